"""The human review queue: images of calls the policy sent to review, held until people approve them."""
