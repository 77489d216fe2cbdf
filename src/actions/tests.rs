//! What messages do to leads, decided from classifications and what the store knows.
