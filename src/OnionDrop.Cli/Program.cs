// Placeholder until the CLI wiring lands.
return 0;
