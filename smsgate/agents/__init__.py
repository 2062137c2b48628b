"""Client processes that talk to the server over HTTP, as a phone or a WhatsApp line does:
phone.py (DeviceClient: the app's side of the protocol), simulator.py (a simulated phone), and
whatsapp_web.py (the WhatsApp Web bridge). They are started by the CLI, never by the server."""
