"""The dashboard's words in Spanish (the first customers are in Mexico) and English."""

from __future__ import annotations

from fastapi import Request

LANGUAGES = ("es", "en")
COOKIE = "smsgate_lang"

TEXT: dict[str, dict[str, str]] = {
    "overview": {"es": "Resumen", "en": "Overview"},
    "devices": {"es": "Dispositivos", "en": "Devices"},
    "send": {"es": "Enviar", "en": "Send"},
    "messages": {"es": "Mensajes", "en": "Messages"},
    "keys": {"es": "Llaves API", "en": "API keys"},
    "logout": {"es": "Salir", "en": "Log out"},
    "login": {"es": "Entrar", "en": "Log in"},
    "signup": {"es": "Crear cuenta", "en": "Sign up"},
    "webhook_plain_http": {
        "es": "Este webhook usa http://, no https://: los mensajes de tus clientes viajarán sin "
        "cifrar hasta él. Usa https:// salvo que el receptor esté en tu propia red.",
        "en": "This webhook uses http://, not https://: your customers' messages will travel to "
        "it unencrypted. Use https:// unless the receiver is on your own network.",
    },
    "form_expired": {
        "es": "El formulario caducó; vuelve a escribir tus datos.",
        "en": "This form expired; please enter your details again.",
    },
    "email": {"es": "Correo", "en": "Email"},
    "password": {"es": "Contraseña", "en": "Password"},
    "name": {"es": "Nombre", "en": "Name"},
    "online": {"es": "En línea", "en": "Online"},
    "offline": {"es": "Desconectado", "en": "Offline"},
    "pending": {"es": "Sin emparejar", "en": "Not paired"},
    "today": {"es": "Hoy", "en": "Today"},
    "usage": {"es": "Uso del plan", "en": "Plan usage"},
    "plan": {"es": "Plan", "en": "Plan"},
    "unlimited": {"es": "ilimitado", "en": "unlimited"},
    "add_android": {"es": "Agregar teléfono Android", "en": "Add Android phone"},
    "pair_steps": {
        "es": "En la app SMS Gateway for Android: Ajustes → Servidor en la nube. Escribe la URL "
        "de la API y el token privado, elige el canal de notificación «Solo SSE», reinicia la "
        "app y activa «Servidor en la nube».",
        "en": "In the SMS Gateway for Android app: Settings → Cloud Server. Enter the API URL and "
        "the private token, choose the “SSE only” notification channel, restart the app and "
        "switch “Cloud server” on.",
    },
    "server_url": {"es": "URL de la API", "en": "API URL"},
    "reach_loopback": {
        "es": "Un teléfono no puede llegar a {url}: es una dirección de esta misma computadora. "
        "Pon un proxy con HTTPS delante del servidor (o un túnel, para una instalación en casa) "
        "y define SMSGATE_PUBLIC_URL con esa dirección https:// (docs/operations.md).",
        "en": "A phone cannot reach {url}: it is an address of this computer only. Put an HTTPS "
        "proxy in front of the server (or a tunnel, for a home setup) and set "
        "SMSGATE_PUBLIC_URL to that https:// address (docs/operations.md).",
    },
    "reach_http": {
        "es": "La app de Android exige HTTPS y {url} es HTTP: pon un proxy con HTTPS delante del "
        "servidor y define SMSGATE_PUBLIC_URL con la dirección https:// (docs/operations.md).",
        "en": "The Android app requires HTTPS and {url} is plain HTTP: put an HTTPS proxy in "
        "front of the server and set SMSGATE_PUBLIC_URL to its https:// address "
        "(docs/operations.md).",
    },
    "reach_private": {
        "es": "{url} es una dirección de tu red local: solo un teléfono conectado a esa misma red "
        "podrá emparejarse.",
        "en": "{url} is an address on your local network: only a phone on that same network "
        "can pair.",
    },
    "private_token": {"es": "Token privado", "en": "Private token"},
    "code": {"es": "Código", "en": "Code"},
    "recipients": {"es": "Destinatarios (uno por línea)", "en": "Recipients (one per line)"},
    "to": {"es": "Para", "en": "To"},
    "message": {"es": "Mensaje", "en": "Message"},
    "device": {"es": "Dispositivo", "en": "Device"},
    "automatic": {"es": "Automático", "en": "Automatic"},
    "sent_ok": {"es": "Mensaje aceptado", "en": "Message accepted"},
    "state": {"es": "Estado", "en": "State"},
    "direction": {"es": "Dirección", "en": "Direction"},
    "created": {"es": "Creado", "en": "Created"},
    "scheduled_for": {"es": "Programado para", "en": "Scheduled for"},
    "last_seen": {"es": "Visto por última vez", "en": "Last seen"},
    "create": {"es": "Crear", "en": "Create"},
    "revoke": {"es": "Revocar", "en": "Revoke"},
    "key_once": {
        "es": "Copia la llave ahora: no se volverá a mostrar.",
        "en": "Copy the key now: it will not be shown again.",
    },
    "no_account": {"es": "¿Sin cuenta?", "en": "No account?"},
    "have_account": {"es": "¿Ya tienes cuenta?", "en": "Have an account?"},
    "none_yet": {"es": "Nada todavía.", "en": "Nothing yet."},
    "characters": {"es": "caracteres", "en": "characters"},
    "conversations": {"es": "Conversaciones", "en": "Conversations"},
    "webhooks": {"es": "Webhooks", "en": "Webhooks"},
    "billing": {"es": "Plan y uso", "en": "Billing"},
    "last_30_days": {"es": "Últimos 30 días", "en": "Last 30 days"},
    "settings": {"es": "Ajustes", "en": "Settings"},
    "save": {"es": "Guardar", "en": "Save"},
    "saved": {"es": "Guardado.", "en": "Saved."},
    "logs": {"es": "Registro", "en": "Logs"},
    "confirm_delete": {
        "es": "Sí, eliminar este dispositivo (su token deja de funcionar).",
        "en": "Yes, delete this device (its token stops working).",
    },
    "account_title": {"es": "Cuenta", "en": "Account"},
    "sending_prefs": {"es": "Preferencias de envío", "en": "Sending preferences"},
    "reroute_stalled": {
        "es": "Si un teléfono tomó un mensaje y no informa sobre él (un día, por omisión), "
        "enviarlo por otro teléfono (puede llegar dos veces) en lugar de marcarlo fallido.",
        "en": "If a phone took a message and stays silent about it (a day, by default), send it "
        "through another phone (it may arrive twice) instead of failing it.",
    },
    "bypass_opt_out": {
        "es": "Los envíos urgentes (prioridad 100 o más) llegan también a números dados de baja.",
        "en": "Expedited sends (priority 100 or more) also reach numbers that opted out.",
    },
    "current_password": {"es": "Contraseña actual", "en": "Current password"},
    "new_password": {"es": "Contraseña nueva", "en": "New password"},
    "change_password": {"es": "Cambiar contraseña", "en": "Change password"},
    "password_changed": {
        "es": "Contraseña cambiada; las otras sesiones se cerraron.",
        "en": "Password changed; other sessions were signed out.",
    },
    "secret": {"es": "Secreto", "en": "Secret"},
    "enabled": {"es": "activo", "en": "enabled"},
    "disabled": {"es": "desactivado", "en": "disabled"},
    "webhooks_disabled": {
        "es": "Webhooks desactivados porque su receptor falló durante días. Sus eventos no se "
        "pierden: se guardan y se envían en cuanto lo vuelvas a activar. Revisa el receptor y "
        "actívalo en Webhooks.",
        "en": "Webhooks disabled because their receiver failed for days. Their events are not "
        "lost: they are kept and sent as soon as you enable it again. Check the receiver and "
        "enable it under Webhooks.",
    },
    "test": {"es": "Probar", "en": "Test"},
    "show_secret": {"es": "Ver secreto", "en": "Show secret"},
    "rotate": {"es": "Rotar secreto", "en": "Rotate secret"},
    "delete": {"es": "Eliminar", "en": "Delete"},
    "event": {"es": "Evento", "en": "Event"},
    "events": {"es": "Eventos", "en": "Events"},
    "attempts": {"es": "Intentos", "en": "Attempts"},
    "error": {"es": "Error", "en": "Error"},
    "search": {"es": "Buscar", "en": "Search"},
    "unread": {"es": "sin leer", "en": "unread"},
    "thread": {"es": "Conversación", "en": "Thread"},
    "reply": {"es": "Responder", "en": "Reply"},
    "pick_thread": {"es": "Elige una conversación.", "en": "Pick a conversation."},
    "add_whatsapp": {"es": "Agregar línea de WhatsApp", "en": "Add WhatsApp line"},
    "provider": {"es": "Tipo", "en": "Kind"},
    "cloud_line": {"es": "API de WhatsApp Cloud (Meta)", "en": "WhatsApp Cloud API (Meta)"},
    "web_line": {"es": "WhatsApp Web (código QR)", "en": "WhatsApp Web (QR code)"},
    "cloud_keys_hint": {
        "es": "Para una línea Cloud: los datos de tu app en Meta. Puedes darlos después.",
        "en": "For a Cloud line: your Meta app's details. You can give them later.",
    },
    "keep_blank": {
        "es": "Deja en blanco lo que no cambia.",
        "en": "Leave blank what does not change.",
    },
    "webhook_url_meta": {
        "es": "URL de webhook para Meta (con el mismo verify token)",
        "en": "Webhook URL for Meta (with the same verify token)",
    },
    "session": {"es": "Sesión de WhatsApp", "en": "WhatsApp session"},
    "scan_qr": {
        "es": "En tu teléfono: WhatsApp → Dispositivos vinculados → Vincular, y escanea este "
        "código. La página se actualiza sola.",
        "en": "On your phone: WhatsApp → Linked devices → Link a device, and scan this code. "
        "This page refreshes itself.",
    },
    "run_bridge": {
        "es": "Inicia el puente en un equipo que quede encendido:",
        "en": "Start the bridge on a machine that stays on:",
    },
    "new_pairing": {"es": "Nuevo token de emparejamiento", "en": "New pairing token"},
    "ready": {"es": "Lista para enviar", "en": "Ready to send"},
    "missing_keys": {"es": "Faltan credenciales", "en": "Credentials missing"},
    "type": {"es": "Tipo", "en": "Kind"},
    "filter": {"es": "Filtrar", "en": "Filter"},
    "any": {"es": "Todos", "en": "Any"},
    "dir_out": {"es": "enviado", "en": "sent"},
    "dir_in": {"es": "recibido", "en": "received"},
    "number": {"es": "Número", "en": "Number"},
    "since": {"es": "Desde", "en": "From"},
    "until": {"es": "Hasta", "en": "To (date)"},
    "older": {"es": "Anteriores", "en": "Older"},
    "newest": {"es": "Más recientes", "en": "Newest"},
    "timeline": {"es": "Historial", "en": "Timeline"},
    "segments": {"es": "Segmentos", "en": "Segments"},
    "copy": {"es": "Copiar", "en": "Copy"},
    "channel": {"es": "Canal", "en": "Channel"},
    "priority": {"es": "Prioridad", "en": "Priority"},
    "priority_normal": {"es": "Normal", "en": "Normal"},
    "priority_expedited": {
        "es": "Urgente (salta los límites del teléfono)",
        "en": "Expedited (skips the phone's limits)",
    },
    "priority_low": {"es": "Baja", "en": "Low"},
    "ttl": {
        "es": "Vence en (segundos, opcional)",
        "en": "Expires after (seconds, optional)",
    },
    "schedule": {
        "es": "Enviar a partir de (tu hora local; UTC sin JavaScript; opcional)",
        "en": "Send from (your local time; UTC without JavaScript; optional)",
    },
    "tokens_hint": {
        "es": "Para tokens de acceso (at_) y de renovación (rt_): POST /api/auth/token con tu "
        'sesión, luego POST /api/auth/token/refresh {"refreshToken": "rt_..."}.',
        "en": "For access (at_) and refresh (rt_) tokens: POST /api/auth/token with your "
        'session, then POST /api/auth/token/refresh {"refreshToken": "rt_..."}.',
    },
    "edit": {"es": "Editar", "en": "Edit"},
    "retry": {"es": "Reintentar", "en": "Retry"},
    "answer": {"es": "Respuesta", "en": "Answer"},
}


def language(request: Request) -> str:
    """?lang= wins, then the cookie, then Accept-Language; Spanish by default."""
    chosen = request.query_params.get("lang") or request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    header = request.headers.get("accept-language", "").lower()
    for part in header.split(","):
        code = part.split(";")[0].strip()[:2]
        if code in LANGUAGES:
            return code
    return "es"


class Words:
    """A language's words, read as `t.name` in templates and `t["name"]` in code. Not a dict:
    Jinja looks attributes up first, so `t.copy` or `t.keys` on a dict printed its method
    ("<built-in method copy of dict object ...>") instead of the word."""

    __slots__ = ("_words",)

    def __init__(self, words: dict[str, str]) -> None:
        self._words = words

    def __getattr__(self, name: str) -> str:
        try:
            return self._words[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> str:
        return self._words[name]


_WORDS = {
    lang: Words({key: words.get(lang, words["en"]) for key, words in TEXT.items()})
    for lang in LANGUAGES
}


def translator(lang: str) -> Words:
    return _WORDS.get(lang, _WORDS["en"])
