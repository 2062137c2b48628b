"""Engine, sessions (committed only at the request or job edge), base model and migrations."""
