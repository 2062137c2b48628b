"""Webhooks: endpoints, events (a transactional outbox), deliveries, signing, formats."""

from smsgate.webhooks.signing import verify

__all__ = ["verify"]
