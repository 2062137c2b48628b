"""Background work: periodic jobs run inside the server process (or by `smsgate worker`)."""
