"""Wire protocols shared by several devices (ISO 8583 between terminal and host; ZVT between till and terminal)."""
