"""Integrations with other frameworks; each needs its extra (`pip install 'taskq-redis[django]'`)."""
