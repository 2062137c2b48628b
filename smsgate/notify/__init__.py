"""Wake-ups: what tells a phone or a browser that something changed (hub.py), across API
processes on PostgreSQL (pgnotify.py)."""
