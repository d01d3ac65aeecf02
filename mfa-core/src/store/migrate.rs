//! Moving local records into the shared store (`mfa-enroll store migrate`).
