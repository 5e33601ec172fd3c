"""Root fields, thin: read the arguments and the context, call one service, map the result."""
