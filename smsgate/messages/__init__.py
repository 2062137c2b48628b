"""Outbound and inbound messages: the send service, states and queries."""
