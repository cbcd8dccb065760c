"""The SMS channel: survivor-started conversations through a gateway, sealed answer by answer."""
