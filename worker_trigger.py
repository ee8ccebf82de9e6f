#!/usr/bin/env python3
"""The launcher system cron calls every minute (see crontab.example).

It is `scheduler worker run` under another name: it loads the settings, checks the database
login and the schema, runs one worker cycle and exits 0; 2 when the database cannot be
reached or the login fails, 3 when the schema is missing, 4 on a bad setting.
"""
from app.cli import worker_run

if __name__ == "__main__":
    worker_run.main(prog_name="worker_trigger.py")
