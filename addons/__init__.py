"""What runs inside mitmproxy: the recorder addon."""
