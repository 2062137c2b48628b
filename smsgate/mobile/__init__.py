"""The phone-facing wire protocol (/api/mobile/v1), versioned as a unit."""
