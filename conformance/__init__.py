"""The conformance tests method authors run; collected automatically by the plugin."""
