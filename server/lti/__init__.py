"""LTI Proctoring Services 1.0, the tool side (docs/lti.md): registrations, the tool key, login and launch."""
