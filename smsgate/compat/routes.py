"""/api/3rdparty/v1 as the ecosystem's clients (the PyPI `android-sms-gateway` SDK, the npm
`android-sms-gateway` client and others) call it: a thin adapter over our own services, no
second copy of any rule. One module per resource; this one mounts them, in the order the app
tries them (the send first)."""

from __future__ import annotations

from smsgate.compat import devices, health, inbox, messages, tokens, webhooks
from smsgate.kit.responses import api_router

router = api_router()
for _part in (health, messages, devices, tokens, webhooks, inbox):
    router.routes.extend(_part.router.routes)
