"""The in-container runtime. Copied into model images: import nothing from modelbus here."""
