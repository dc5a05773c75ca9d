"""Scale-out: worker processes sharing PostgreSQL (or a SQLite file), killed, paused, drained."""
