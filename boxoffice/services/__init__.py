"""Business rules, framework-free: plain async functions with keyword-only arguments that take
what they need (the database, a backend, the acting viewer) and raise ``boxoffice.errors``."""
