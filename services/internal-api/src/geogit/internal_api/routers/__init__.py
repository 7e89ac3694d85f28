"""One module per route family; app.py lists them all in one table."""
