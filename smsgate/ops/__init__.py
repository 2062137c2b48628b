"""Operations: what keeps the server itself healthy (request limits), apart from any domain."""
