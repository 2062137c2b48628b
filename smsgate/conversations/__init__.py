"""Conversation threads (one per line and contact), read state, and opt-outs."""
