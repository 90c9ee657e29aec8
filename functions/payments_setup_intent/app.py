"""POST /payments/customers/{customer_id}/setup/intent: a Stripe-hosted page to save a card (201)."""

from billing.http import Request, api
from billing.schemas.payments import SetupIntentCreate
from billing.services import payment_methods


@api(status=201, body=SetupIntentCreate)
def lambda_handler(req: Request) -> dict:
    return payment_methods.setup_intent(req.scope, req.param("customer_id"), req.body, req.request_id)
