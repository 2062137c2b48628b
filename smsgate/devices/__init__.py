"""Devices: Android phones and WhatsApp lines that carry an account's messages."""
