"""Every model, imported once so the metadata (and Alembic) sees the whole schema."""

from smsgate.accounts import models as accounts_models
from smsgate.billing import models as billing_models
from smsgate.campaigns import models as campaigns_models
from smsgate.conversations import models as conversations_models
from smsgate.devices import models as devices_models
from smsgate.messages import models as messages_models
from smsgate.storage import idempotency
from smsgate.storage.base import Base
from smsgate.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "billing_models",
    "campaigns_models",
    "conversations_models",
    "devices_models",
    "idempotency",
    "messages_models",
    "metadata",
    "webhooks_models",
]
