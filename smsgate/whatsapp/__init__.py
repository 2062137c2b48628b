"""WhatsApp lines: the Cloud API (cloud.py) and WhatsApp Web (web.py, runner.py: the bridge
process), as devices of the account (lines.py, service.py)."""
