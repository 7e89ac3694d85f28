"""Users' credentials: passwords and personal access tokens, SSH keys, reserved usernames."""
