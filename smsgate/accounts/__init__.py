"""Accounts, sessions, API keys, access and refresh tokens, and the auth dependencies."""
