"""The signed-in user's own account page: personal API tokens."""
