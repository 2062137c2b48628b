"""Contacts, message templates and campaigns: one text sent to many people, each with its own
variables, through the one send path (messages/sending/)."""
