"""What is checked: a user file imported by path, and the Functions, ops and modules in it."""
