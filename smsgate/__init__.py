"""SMSGate: Android phones and WhatsApp numbers behind one messaging REST API."""

__version__ = "0.1.0"
