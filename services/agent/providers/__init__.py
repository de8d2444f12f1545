"""Model providers: one conversation in, one completion (or a classified failure) out."""
