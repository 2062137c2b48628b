"""Storing sends: one writer for both databases.

prepare.py (the rows a send becomes) -> writer.py (group commit in the API process) ->
process.py (the writer's own process) -> batch.py (the one algorithm: every rule of storing a
send) over store.py's BatchStore, implemented by sqlite.py and postgres.py (statements only).
"""
