"""gRPC plumbing both vectorlane services share: the domain-error base, the one error-mapping interceptor,
the call-metrics interceptor, and handler wrapping. Nothing service-specific lives here."""
