"""Small shared toolbox with no business rules."""
