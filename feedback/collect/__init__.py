"""The survivor-facing side: survey pages, the SMS webhook, invitations. Public keys only."""
