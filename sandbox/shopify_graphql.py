"""Shopify GraphQL Admin sandbox: `POST /admin/api/{version}/graphql.json` over the REST sandbox's state
(sandbox/shopify.py, `install_graphql`), serving the documents of adapters/marketplace/shopify_graphql.py.

The schema is SDL with Shopify's own names for the subset served (checked against the published 2025-01
introspection, plus the later changes the client uses: `WebhookSubscription.uri`, `orderCancel(refundMethod:)`,
`changeFromQuantity`, `CHANGE_FROM_QUANTITY_STALE` and the `@idempotent(key:)` directive of 2026-04). Global ids
`gid://shopify/Order/<id>` are the REST integer ids. Mutations go through the REST routes' own operations
(`app.state.shop`), so a fulfillment or refund made here is in the REST lists and sends the same signed webhook.

Like Shopify: refusals are `userErrors` (HTTP 200), invalid documents are GraphQL `errors` (HTTP 200), a wrong
access token is a 401. Every answer carries `extensions.cost` from a leaky bucket (maximumAvailable 2000,
restoreRate 100/s; requested cost: 1 per object, connections 2 + `first` x their node's cost, 10 per mutation;
refunded down to the actual cost after the query ran); a query the bucket cannot afford gets `THROTTLED`, one above
the single-query limit `MAX_COST_EXCEEDED`. `POST /_admin/graphql/throttle` sets maximumAvailable, restoreRate,
currentlyAvailable and maxQueryCost (null: no single-query limit).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import graphql
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInt,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
)

GID = "gid://shopify/"
MAXIMUM_AVAILABLE, RESTORE_RATE, MAX_QUERY_COST = 2000.0, 100.0, 1000
QUANTITY_NAMES = ("available", "on_hand", "committed", "reserved", "damaged", "incoming", "quality_control",
                  "safety_stock")
# the reasons inventorySetQuantities accepts (Shopify's published list)
INVENTORY_REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_canceled", "movement_created", "movement_received",
    "movement_updated", "other", "promotion", "quality_control", "received", "reservation_created",
    "reservation_deleted", "reservation_updated", "restock", "safety_stock", "shrinkage"})

SDL = r'''
"""The subset of Shopify's GraphQL Admin schema the sandbox serves (Shopify's own type, field, argument and enum
names: checked against the published 2025-01 introspection, with the 2025-04+ and 2026-04 changes the platform's
client uses: WebhookSubscription.uri, orderCancel(refundMethod:), changeFromQuantity and @idempotent)."""
schema { query: QueryRoot mutation: Mutation }

"Since 2026-04: the idempotency key of a mutation (a repeat of the key replays the first result)."
directive @idempotent(key: String!) on FIELD

scalar DateTime
scalar Decimal
scalar Money
scalar URL
scalar BigInt
scalar UnsignedInt64

interface Node { id: ID! }

type PageInfo { endCursor: String hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String }

type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { presentmentMoney: MoneyV2! shopMoney: MoneyV2! }

type UserError { field: [String!] message: String! }

type QueryRoot {
  order(id: ID!): Order
  fulfillmentOrder(id: ID!): FulfillmentOrder
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
         sortKey: OrderSortKeys = PROCESSED_AT, query: String, savedSearchId: ID): OrderConnection!
  productVariants(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                  sortKey: ProductVariantSortKeys = ID, query: String, savedSearchId: ID): ProductVariantConnection!
  locations(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
            sortKey: LocationSortKeys = NAME, query: String, includeLegacy: Boolean = false,
            includeInactive: Boolean = false): LocationConnection!
  inventoryItem(id: ID!): InventoryItem
  shopifyPaymentsAccount: ShopifyPaymentsAccount
  webhookSubscriptions(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                       sortKey: WebhookSubscriptionSortKeys = CREATED_AT, query: String, callbackUrl: URL,
                       format: WebhookSubscriptionFormat, topics: [WebhookSubscriptionTopic!]
                       ): WebhookSubscriptionConnection!
}

type Mutation {
  fulfillmentCreate(fulfillment: FulfillmentInput!, message: String): FulfillmentCreatePayload
  orderCancel(orderId: ID!, reason: OrderCancelReason!, refund: Boolean, refundMethod: OrderCancelRefundMethodInput,
              restock: Boolean!, notifyCustomer: Boolean = false, staffNote: String = null): OrderCancelPayload
  refundCreate(input: RefundInput!): RefundCreatePayload
  tagsAdd(id: ID!, tags: [String!]!): TagsAddPayload
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
  productVariantsBulkUpdate(variants: [ProductVariantsBulkInput!]!, productId: ID!,
                            allowPartialUpdates: Boolean = false): ProductVariantsBulkUpdatePayload
  webhookSubscriptionCreate(topic: WebhookSubscriptionTopic!,
                            webhookSubscription: WebhookSubscriptionInput!): WebhookSubscriptionCreatePayload
}

# -- orders ------------------------------------------------------------------------------------------------
enum OrderSortKeys { CREATED_AT CUSTOMER_NAME DESTINATION FINANCIAL_STATUS FULFILLMENT_STATUS ID ORDER_NUMBER
  PO_NUMBER PROCESSED_AT RELEVANCE TOTAL_ITEMS_QUANTITY TOTAL_PRICE UPDATED_AT }
enum OrderDisplayFinancialStatus { PENDING AUTHORIZED PARTIALLY_PAID PARTIALLY_REFUNDED VOIDED PAID REFUNDED EXPIRED }
enum OrderDisplayFulfillmentStatus { UNFULFILLED PARTIALLY_FULFILLED FULFILLED RESTOCKED PENDING_FULFILLMENT OPEN
  IN_PROGRESS ON_HOLD SCHEDULED REQUEST_DECLINED }

type Order implements Node {
  id: ID!
  name: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  processedAt: DateTime!
  cancelledAt: DateTime
  cancelReason: OrderCancelReason
  test: Boolean!
  taxesIncluded: Boolean!
  currencyCode: CurrencyCode!
  email: String
  note: String
  tags: [String!]!
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  discountCodes: [String!]!
  totalPriceSet: MoneyBag!
  totalDiscountsSet: MoneyBag
  customer: Customer
  shippingAddress: MailingAddress
  billingAddress: MailingAddress
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): LineItemConnection!
  shippingLines(includeRemovals: Boolean = false, first: Int, after: String, last: Int, before: String,
                reverse: Boolean = false): ShippingLineConnection!
  fulfillments(first: Int): [Fulfillment!]!
  fulfillmentOrders(displayable: Boolean = false, first: Int, after: String, last: Int, before: String,
                    reverse: Boolean = false, query: String): FulfillmentOrderConnection!
  refunds(first: Int): [Refund!]!
  suggestedRefund(shippingAmount: Money, refundShipping: Boolean, refundLineItems: [RefundLineItemInput!],
                  suggestFullRefund: Boolean = false): SuggestedRefund
}
type OrderEdge { cursor: String! node: Order! }
type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }

type Customer implements Node { id: ID! firstName: String lastName: String email: String taxExempt: Boolean! }

type MailingAddress {
  name: String firstName: String lastName: String company: String address1: String address2: String city: String
  province: String provinceCode: String zip: String country: String countryCodeV2: CountryCode phone: String
}

type LineItem implements Node {
  id: ID!
  sku: String
  name: String!
  title: String!
  quantity: Int!
  requiresShipping: Boolean!
  taxable: Boolean!
  variant: ProductVariant
  originalUnitPriceSet: MoneyBag!
  discountAllocations: [DiscountAllocation!]!
  taxLines(first: Int): [TaxLine!]!
}
type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { edges: [LineItemEdge!]! nodes: [LineItem!]! pageInfo: PageInfo! }

type DiscountAllocation { allocatedAmountSet: MoneyBag! }
type TaxLine { title: String! rate: Float priceSet: MoneyBag! }

type ShippingLine {
  id: ID code: String title: String! originalPriceSet: MoneyBag! discountAllocations: [DiscountAllocation!]!
  taxLines: [TaxLine!]!
}
type ShippingLineEdge { cursor: String! node: ShippingLine! }
type ShippingLineConnection { edges: [ShippingLineEdge!]! nodes: [ShippingLine!]! pageInfo: PageInfo! }

type Job { id: ID! done: Boolean! }

enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY STAFF OTHER }
input OrderCancelRefundMethodInput { originalPaymentMethodsRefund: Boolean storeCreditRefund: OrderCancelStoreCreditRefundInput }
input OrderCancelStoreCreditRefundInput { amount: MoneyInput expiresAt: DateTime }
input MoneyInput { amount: Decimal! currencyCode: CurrencyCode! }
enum OrderCancelUserErrorCode { NO_REFUND_PERMISSION NOT_FOUND INVALID }
type OrderCancelUserError { code: OrderCancelUserErrorCode field: [String!] message: String! }
type OrderCancelPayload { job: Job orderCancelUserErrors: [OrderCancelUserError!]! userErrors: [UserError!]! }

type TagsAddPayload { node: Node userErrors: [UserError!]! }

# -- fulfillment ---------------------------------------------------------------------------------------------
enum FulfillmentStatus { PENDING OPEN SUCCESS CANCELLED ERROR FAILURE }
enum FulfillmentOrderStatus { OPEN IN_PROGRESS CANCELLED INCOMPLETE CLOSED SCHEDULED ON_HOLD }

type Fulfillment implements Node {
  id: ID! name: String! status: FulfillmentStatus! createdAt: DateTime! updatedAt: DateTime!
  trackingInfo(first: Int): [FulfillmentTrackingInfo!]!
}
type FulfillmentTrackingInfo { company: String number: String url: URL }

type FulfillmentOrder implements Node {
  id: ID!
  status: FulfillmentOrderStatus!
  assignedLocation: FulfillmentOrderAssignedLocation!
  deliveryMethod: DeliveryMethod
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false
            ): FulfillmentOrderLineItemConnection!
}
enum DeliveryMethodType { LOCAL NONE PICK_UP PICKUP_POINT RETAIL SHIPPING }
type DeliveryMethod { id: ID! methodType: DeliveryMethodType! }
type FulfillmentOrderAssignedLocation { name: String! location: Location }
type FulfillmentOrderEdge { cursor: String! node: FulfillmentOrder! }
type FulfillmentOrderConnection { edges: [FulfillmentOrderEdge!]! nodes: [FulfillmentOrder!]! pageInfo: PageInfo! }

type FulfillmentOrderLineItem implements Node {
  id: ID! lineItem: LineItem! remainingQuantity: Int! totalQuantity: Int! sku: String
}
type FulfillmentOrderLineItemEdge { cursor: String! node: FulfillmentOrderLineItem! }
type FulfillmentOrderLineItemConnection {
  edges: [FulfillmentOrderLineItemEdge!]! nodes: [FulfillmentOrderLineItem!]! pageInfo: PageInfo!
}

input FulfillmentInput {
  trackingInfo: FulfillmentTrackingInput
  notifyCustomer: Boolean = false
  lineItemsByFulfillmentOrder: [FulfillmentOrderLineItemsInput!]!
}
input FulfillmentOrderLineItemsInput { fulfillmentOrderId: ID! fulfillmentOrderLineItems: [FulfillmentOrderLineItemInput!] }
input FulfillmentOrderLineItemInput { id: ID! quantity: Int! }
input FulfillmentTrackingInput { number: String url: URL company: String numbers: [String!] urls: [URL!] }
type FulfillmentCreatePayload { fulfillment: Fulfillment userErrors: [UserError!]! }

# -- refunds -------------------------------------------------------------------------------------------------
enum OrderTransactionKind { SALE CAPTURE AUTHORIZATION VOID REFUND CHANGE EMV_AUTHORIZATION SUGGESTED_REFUND }
enum SuggestedOrderTransactionKind { SUGGESTED_REFUND }
enum RefundLineItemRestockType { RETURN CANCEL LEGACY_RESTOCK NO_RESTOCK }

type OrderTransaction implements Node { id: ID! kind: OrderTransactionKind! gateway: String amountSet: MoneyBag! }
type Refund implements Node { id: ID! note: String createdAt: DateTime totalRefundedSet: MoneyBag! }
type SuggestedRefund { amountSet: MoneyBag! suggestedTransactions: [SuggestedOrderTransaction!]! }
type SuggestedOrderTransaction {
  gateway: String kind: SuggestedOrderTransactionKind! amount: Money! amountSet: MoneyBag!
  maximumRefundable: Money maximumRefundableSet: MoneyBag parentTransaction: OrderTransaction
}

input RefundInput {
  currency: CurrencyCode orderId: ID! note: String notify: Boolean shipping: ShippingRefundInput
  refundLineItems: [RefundLineItemInput!] transactions: [OrderTransactionInput!]
}
input RefundLineItemInput { lineItemId: ID! quantity: Int! restockType: RefundLineItemRestockType locationId: ID }
input ShippingRefundInput { amount: Money fullRefund: Boolean }
input OrderTransactionInput { amount: Money! gateway: String! kind: OrderTransactionKind! orderId: ID! parentId: ID }
type RefundCreatePayload { order: Order refund: Refund userErrors: [UserError!]! }

# -- products, inventory, locations -------------------------------------------------------------------------------
enum ProductVariantSortKeys { FULL_TITLE ID INVENTORY_LEVELS_AVAILABLE INVENTORY_MANAGEMENT INVENTORY_POLICY
  INVENTORY_QUANTITY NAME POPULAR POSITION RELEVANCE SKU TITLE }
enum LocationSortKeys { ID NAME RELEVANCE }

type Product implements Node { id: ID! title: String! }
type ProductVariant implements Node {
  id: ID! sku: String title: String! price: Money! compareAtPrice: Money product: Product! inventoryItem: InventoryItem!
}
type ProductVariantEdge { cursor: String! node: ProductVariant! }
type ProductVariantConnection { edges: [ProductVariantEdge!]! nodes: [ProductVariant!]! pageInfo: PageInfo! }

type InventoryItem implements Node { id: ID! sku: String inventoryLevel(locationId: ID!): InventoryLevel }
type InventoryLevel implements Node {
  id: ID! location: Location! item: InventoryItem! quantities(names: [String!]!): [InventoryQuantity!]!
}
type InventoryQuantity { id: ID! name: String! quantity: Int! updatedAt: DateTime }

type Location implements Node { id: ID! name: String! isActive: Boolean! }
type LocationEdge { cursor: String! node: Location! }
type LocationConnection { edges: [LocationEdge!]! nodes: [Location!]! pageInfo: PageInfo! }

input InventorySetQuantitiesInput {
  reason: String! name: String! referenceDocumentUri: String quantities: [InventoryQuantityInput!]!
}
"""2026-04: `changeFromQuantity` must be given (null opts out of the compare-and-set)."""
input InventoryQuantityInput { inventoryItemId: ID! locationId: ID! quantity: Int! changeFromQuantity: Int }
enum InventorySetQuantitiesUserErrorCode { CHANGE_FROM_QUANTITY_STALE COMPARE_QUANTITY_REQUIRED
  COMPARE_QUANTITY_STALE IDEMPOTENCY_CONCURRENT_REQUEST IDEMPOTENCY_KEY_PARAMETER_MISMATCH
  IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED INVALID_INVENTORY_ITEM INVALID_LOCATION INVALID_QUANTITY_NEGATIVE
  INVALID_REASON INVALID_REFERENCE_DOCUMENT ITEM_NOT_STOCKED_AT_LOCATION INVALID_QUANTITY_TOO_HIGH
  INVALID_QUANTITY_TOO_LOW INVALID_NAME NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR NON_MUTABLE_INVENTORY_ITEM }
type InventorySetQuantitiesUserError { code: InventorySetQuantitiesUserErrorCode field: [String!] message: String! }
type InventoryChange { name: String! delta: Int! quantityAfterChange: Int item: InventoryItem location: Location }
type InventoryAdjustmentGroup implements Node {
  id: ID! reason: String! createdAt: DateTime! referenceDocumentUri: String
  changes(inventoryItemIds: [ID!], locationIds: [ID!], quantityNames: [String!]): [InventoryChange!]!
}
type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup userErrors: [InventorySetQuantitiesUserError!]!
}

input ProductVariantsBulkInput { id: ID price: Money compareAtPrice: Money }
enum ProductVariantsBulkUpdateUserErrorCode { PRODUCT_DOES_NOT_EXIST PRODUCT_VARIANT_DOES_NOT_EXIST
  PRODUCT_VARIANT_ID_MISSING INVALID_INPUT NEGATIVE_PRICE_VALUE }
type ProductVariantsBulkUpdateUserError { code: ProductVariantsBulkUpdateUserErrorCode field: [String!] message: String! }
type ProductVariantsBulkUpdatePayload {
  product: Product productVariants: [ProductVariant!] userErrors: [ProductVariantsBulkUpdateUserError!]!
}

# -- Shopify Payments ------------------------------------------------------------------------------------------
enum ShopifyPaymentsPayoutStatus { SCHEDULED IN_TRANSIT PAID FAILED CANCELED }
enum ShopifyPaymentsPayoutTransactionType { DEPOSIT WITHDRAWAL }
enum ShopifyPaymentsSourceType { ADJUSTMENT_REVERSAL CHARGE REFUND SYSTEM_ADJUSTMENT DISPUTE ADJUSTMENT TRANSFER }
enum ShopifyPaymentsTransactionType { CHARGE REFUND REFUND_FAILURE APPLICATION_FEE_REFUND ADJUSTMENT
  CHARGE_ADJUSTMENT REFUND_ADJUSTMENT DISPUTE_WITHDRAWAL DISPUTE_REVERSAL CHARGEBACK_FEE CHARGEBACK_FEE_REFUND
  TRANSFER TRANSFER_FAILURE TRANSFER_CANCEL RESERVED_FUNDS RESERVED_FUNDS_WITHDRAWAL RESERVED_FUNDS_REVERSAL
  TAX_ADJUSTMENT_CREDIT TAX_ADJUSTMENT_DEBIT MERCHANT_GOODWILL_CREDIT BILLING_DEBIT SHIPPING_LABEL ADVANCE }
enum PayoutSortKeys { AMOUNT ID ISSUED_AT STATUS TRANSACTION_TYPE RELEVANCE }
enum BalanceTransactionSortKeys { AMOUNT FEE ID NET ORDER_NAME PAYMENT_METHOD_NAME PAYOUT_DATE PAYOUT_STATUS
  PROCESSED_AT TRANSACTION_TYPE RELEVANCE }
type ShopifyPaymentsAccount implements Node {
  id: ID! activated: Boolean! defaultCurrency: CurrencyCode!
  payouts(transactionType: ShopifyPaymentsPayoutTransactionType, first: Int, after: String, last: Int,
          before: String, reverse: Boolean = false, sortKey: PayoutSortKeys = ISSUED_AT, query: String,
          savedSearchId: ID): ShopifyPaymentsPayoutConnection!
  balanceTransactions(hideTransfers: Boolean = false, first: Int, after: String, last: Int, before: String,
                      reverse: Boolean = false, sortKey: BalanceTransactionSortKeys = PROCESSED_AT, query: String,
                      savedSearchId: ID): ShopifyPaymentsBalanceTransactionConnection!
}
type ShopifyPaymentsPayoutSummary {
  adjustmentsFee: MoneyV2! adjustmentsGross: MoneyV2! chargesFee: MoneyV2! chargesGross: MoneyV2!
  refundsFee: MoneyV2! refundsFeeGross: MoneyV2! reservedFundsFee: MoneyV2! reservedFundsGross: MoneyV2!
  retriedPayoutsFee: MoneyV2! retriedPayoutsGross: MoneyV2!
}
type ShopifyPaymentsPayout implements Node {
  id: ID! legacyResourceId: UnsignedInt64! issuedAt: DateTime! net: MoneyV2! status: ShopifyPaymentsPayoutStatus!
  summary: ShopifyPaymentsPayoutSummary! transactionType: ShopifyPaymentsPayoutTransactionType!
}
type ShopifyPaymentsPayoutEdge { cursor: String! node: ShopifyPaymentsPayout! }
type ShopifyPaymentsPayoutConnection {
  edges: [ShopifyPaymentsPayoutEdge!]! nodes: [ShopifyPaymentsPayout!]! pageInfo: PageInfo!
}
type ShopifyPaymentsAssociatedOrder { id: ID! name: String! }
type ShopifyPaymentsBalanceTransactionAssociatedPayout { id: ID status: ShopifyPaymentsBalanceTransactionPayoutStatus }
enum ShopifyPaymentsBalanceTransactionPayoutStatus { SCHEDULED IN_TRANSIT PAID FAILED CANCELED ACTION_REQUIRED PENDING }
type ShopifyPaymentsBalanceTransaction implements Node {
  id: ID! type: ShopifyPaymentsTransactionType! test: Boolean! amount: MoneyV2! fee: MoneyV2! net: MoneyV2!
  sourceId: BigInt sourceType: ShopifyPaymentsSourceType sourceOrderTransactionId: BigInt
  associatedOrder: ShopifyPaymentsAssociatedOrder associatedPayout: ShopifyPaymentsBalanceTransactionAssociatedPayout!
  transactionDate: DateTime! adjustmentReason: String
}
type ShopifyPaymentsBalanceTransactionEdge { cursor: String! node: ShopifyPaymentsBalanceTransaction! }
type ShopifyPaymentsBalanceTransactionConnection {
  edges: [ShopifyPaymentsBalanceTransactionEdge!]! nodes: [ShopifyPaymentsBalanceTransaction!]! pageInfo: PageInfo!
}

# -- webhooks --------------------------------------------------------------------------------------------------
enum WebhookSubscriptionFormat { JSON XML }
enum WebhookSubscriptionSortKeys { CREATED_AT ID RELEVANCE }
type WebhookSubscription implements Node {
  id: ID! topic: WebhookSubscriptionTopic! uri: String! callbackUrl: URL! format: WebhookSubscriptionFormat!
  createdAt: DateTime! updatedAt: DateTime!
}
type WebhookSubscriptionEdge { cursor: String! node: WebhookSubscription! }
type WebhookSubscriptionConnection {
  edges: [WebhookSubscriptionEdge!]! nodes: [WebhookSubscription!]! pageInfo: PageInfo!
}
input WebhookSubscriptionInput { uri: String callbackUrl: URL format: WebhookSubscriptionFormat includeFields: [String!] filter: String }
type WebhookSubscriptionCreatePayload { userErrors: [UserError!]! webhookSubscription: WebhookSubscription }
enum CurrencyCode {
  USD EUR GBP CAD AFN ALL DZD AOA ARS AMD AWG AUD BBD AZN BDT BSD BHD BIF BYN BZD BMD BTN BAM BRL BOB BWP
  BND BGN MMK KHR CVE KYD XAF CLP CNY COP KMF CDF CRC HRK CZK DKK DJF DOP XCD EGP ERN ETB FKP XPF FJD GIP
  GMD GHS GTQ GYD GEL GNF HTG HNL HKD HUF ISK INR IDR ILS IRR IQD JMD JPY JEP JOD KZT KES KID KWD KGS LAK
  LVL LBP LSL LRD LYD LTL MGA MKD MOP MWK MVR MRU MXN MYR MUR MDL MAD MNT MZN NAD NPR ANG NZD NIO NGN NOK
  OMR PAB PKR PGK PYG PEN PHP PLN QAR RON RUB RWF WST SHP SAR RSD SCR SLL SGD SDG SOS SYP ZAR KRW SSP SBD
  LKR SRD SZL SEK CHF TWD THB TJS TZS TOP TTD TND TRY TMT UGX UAH AED UYU UZS VUV VES VND XOF YER ZMW BYR
  STD STN VED VEF XXX
}

enum CountryCode {
  AF AX AL DZ AD AO AI AG AR AM AW AC AU AT AZ BS BH BD BB BY BE BZ BJ BM BT BO BA BW BV BR IO BN BG BF BI
  KH CA CV BQ KY CF TD CL CN CX CC CO KM CG CD CK CR HR CU CW CY CZ CI DK DJ DM DO EC EG SV GQ ER EE SZ ET
  FK FO FJ FI FR GF PF TF GA GM GE DE GH GI GR GL GD GP GT GG GN GW GY HT HM VA HN HK HU IS IN ID IR IQ IE
  IM IL IT JM JP JE JO KZ KE KI KP XK KW KG LA LV LB LS LR LY LI LT LU MO MG MW MY MV ML MT MQ MR MU YT MX
  MD MC MN ME MS MA MZ MM NA NR NP NL AN NC NZ NI NE NG NU NF MK NO OM PK PS PA PG PY PE PH PN PL PT QA CM
  RE RO RU RW BL SH KN LC MF PM WS SM ST SA SN RS SC SL SG SX SK SI SB SO ZA GS KR SS ES LK VC SD SR SJ SE
  CH SY TW TJ TZ TH TL TG TK TO TT TA TN TR TM TC TV UG UA AE GB US UM UY UZ VU VE VN VG WF EH YE ZM ZW ZZ
}

enum WebhookSubscriptionTopic {
  APP_UNINSTALLED APP_SCOPES_UPDATE CARTS_CREATE CARTS_UPDATE CHANNELS_DELETE CHECKOUTS_CREATE
  CHECKOUTS_DELETE CHECKOUTS_UPDATE CUSTOMER_PAYMENT_METHODS_CREATE CUSTOMER_PAYMENT_METHODS_UPDATE
  CUSTOMER_PAYMENT_METHODS_REVOKE COLLECTION_LISTINGS_ADD COLLECTION_LISTINGS_REMOVE
  COLLECTION_LISTINGS_UPDATE COLLECTION_PUBLICATIONS_CREATE COLLECTION_PUBLICATIONS_DELETE
  COLLECTION_PUBLICATIONS_UPDATE COLLECTIONS_CREATE COLLECTIONS_DELETE COLLECTIONS_UPDATE
  CUSTOMER_GROUPS_CREATE CUSTOMER_GROUPS_DELETE CUSTOMER_GROUPS_UPDATE CUSTOMERS_CREATE CUSTOMERS_DELETE
  CUSTOMERS_DISABLE CUSTOMERS_ENABLE CUSTOMERS_UPDATE CUSTOMERS_PURCHASING_SUMMARY
  CUSTOMERS_MARKETING_CONSENT_UPDATE CUSTOMER_TAGS_ADDED CUSTOMER_TAGS_REMOVED
  CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE DISPUTES_CREATE DISPUTES_UPDATE DRAFT_ORDERS_CREATE
  DRAFT_ORDERS_DELETE DRAFT_ORDERS_UPDATE FULFILLMENT_EVENTS_CREATE FULFILLMENT_EVENTS_DELETE
  FULFILLMENTS_CREATE FULFILLMENTS_UPDATE ATTRIBUTED_SESSIONS_FIRST ATTRIBUTED_SESSIONS_LAST
  ORDER_TRANSACTIONS_CREATE ORDERS_CANCELLED ORDERS_CREATE ORDERS_DELETE ORDERS_EDITED ORDERS_FULFILLED
  ORDERS_PAID ORDERS_PARTIALLY_FULFILLED ORDERS_UPDATED FULFILLMENT_ORDERS_MOVED
  FULFILLMENT_ORDERS_HOLD_RELEASED FULFILLMENT_ORDERS_SCHEDULED_FULFILLMENT_ORDER_READY
  FULFILLMENT_HOLDS_RELEASED FULFILLMENT_ORDERS_ORDER_ROUTING_COMPLETE FULFILLMENT_ORDERS_CANCELLED
  FULFILLMENT_ORDERS_FULFILLMENT_SERVICE_FAILED_TO_COMPLETE FULFILLMENT_ORDERS_FULFILLMENT_REQUEST_REJECTED
  FULFILLMENT_ORDERS_CANCELLATION_REQUEST_SUBMITTED FULFILLMENT_ORDERS_CANCELLATION_REQUEST_ACCEPTED
  FULFILLMENT_ORDERS_CANCELLATION_REQUEST_REJECTED FULFILLMENT_ORDERS_FULFILLMENT_REQUEST_SUBMITTED
  FULFILLMENT_ORDERS_FULFILLMENT_REQUEST_ACCEPTED FULFILLMENT_HOLDS_ADDED
  FULFILLMENT_ORDERS_LINE_ITEMS_PREPARED_FOR_LOCAL_DELIVERY FULFILLMENT_ORDERS_PLACED_ON_HOLD
  FULFILLMENT_ORDERS_MERGED FULFILLMENT_ORDERS_SPLIT PRODUCT_LISTINGS_ADD PRODUCT_LISTINGS_REMOVE
  PRODUCT_LISTINGS_UPDATE SCHEDULED_PRODUCT_LISTINGS_ADD SCHEDULED_PRODUCT_LISTINGS_UPDATE
  SCHEDULED_PRODUCT_LISTINGS_REMOVE PRODUCT_PUBLICATIONS_CREATE PRODUCT_PUBLICATIONS_DELETE
  PRODUCT_PUBLICATIONS_UPDATE PRODUCTS_CREATE PRODUCTS_DELETE PRODUCTS_UPDATE REFUNDS_CREATE SEGMENTS_CREATE
  SEGMENTS_DELETE SEGMENTS_UPDATE SHIPPING_ADDRESSES_CREATE SHIPPING_ADDRESSES_UPDATE SHOP_UPDATE
  TAX_PARTNERS_UPDATE TAX_SERVICES_CREATE TAX_SERVICES_UPDATE THEMES_CREATE THEMES_DELETE THEMES_PUBLISH
  THEMES_UPDATE VARIANTS_IN_STOCK VARIANTS_OUT_OF_STOCK INVENTORY_LEVELS_CONNECT INVENTORY_LEVELS_UPDATE
  INVENTORY_LEVELS_DISCONNECT INVENTORY_ITEMS_CREATE INVENTORY_ITEMS_UPDATE INVENTORY_ITEMS_DELETE
  LOCATIONS_ACTIVATE LOCATIONS_DEACTIVATE LOCATIONS_CREATE LOCATIONS_UPDATE LOCATIONS_DELETE
  TENDER_TRANSACTIONS_CREATE APP_PURCHASES_ONE_TIME_UPDATE APP_SUBSCRIPTIONS_APPROACHING_CAPPED_AMOUNT
  APP_SUBSCRIPTIONS_UPDATE LOCALES_CREATE LOCALES_UPDATE DOMAINS_CREATE DOMAINS_UPDATE DOMAINS_DESTROY
  SUBSCRIPTION_CONTRACTS_CREATE SUBSCRIPTION_CONTRACTS_UPDATE SUBSCRIPTION_BILLING_CYCLE_EDITS_CREATE
  SUBSCRIPTION_BILLING_CYCLE_EDITS_UPDATE SUBSCRIPTION_BILLING_CYCLE_EDITS_DELETE PROFILES_CREATE
  PROFILES_UPDATE PROFILES_DELETE SUBSCRIPTION_BILLING_ATTEMPTS_SUCCESS
  SUBSCRIPTION_BILLING_ATTEMPTS_FAILURE SUBSCRIPTION_BILLING_ATTEMPTS_CHALLENGED RETURNS_CANCEL
  RETURNS_CLOSE RETURNS_REOPEN RETURNS_REQUEST RETURNS_APPROVE RETURNS_UPDATE RETURNS_DECLINE
  REVERSE_DELIVERIES_ATTACH_DELIVERABLE REVERSE_FULFILLMENT_ORDERS_DISPOSE PAYMENT_TERMS_CREATE
  PAYMENT_TERMS_DELETE PAYMENT_TERMS_UPDATE PAYMENT_SCHEDULES_DUE SELLING_PLAN_GROUPS_CREATE
  SELLING_PLAN_GROUPS_UPDATE SELLING_PLAN_GROUPS_DELETE BULK_OPERATIONS_FINISH PRODUCT_FEEDS_CREATE
  PRODUCT_FEEDS_UPDATE PRODUCT_FEEDS_INCREMENTAL_SYNC PRODUCT_FEEDS_FULL_SYNC PRODUCT_FEEDS_FULL_SYNC_FINISH
  MARKETS_CREATE MARKETS_UPDATE MARKETS_DELETE ORDERS_RISK_ASSESSMENT_CHANGED
  ORDERS_SHOPIFY_PROTECT_ELIGIBILITY_CHANGED FULFILLMENT_ORDERS_RESCHEDULED PUBLICATIONS_DELETE
  AUDIT_EVENTS_ADMIN_API_ACTIVITY FULFILLMENT_ORDERS_LINE_ITEMS_PREPARED_FOR_PICKUP COMPANIES_CREATE
  COMPANIES_UPDATE COMPANIES_DELETE COMPANY_LOCATIONS_CREATE COMPANY_LOCATIONS_UPDATE
  COMPANY_LOCATIONS_DELETE COMPANY_CONTACTS_CREATE COMPANY_CONTACTS_UPDATE COMPANY_CONTACTS_DELETE
  CUSTOMERS_MERGE CUSTOMER_ACCOUNT_SETTINGS_UPDATE CUSTOMER_JOINED_SEGMENT CUSTOMER_LEFT_SEGMENT
  COMPANY_CONTACT_ROLES_ASSIGN COMPANY_CONTACT_ROLES_REVOKE SUBSCRIPTION_CONTRACTS_ACTIVATE
  SUBSCRIPTION_CONTRACTS_PAUSE SUBSCRIPTION_CONTRACTS_CANCEL SUBSCRIPTION_CONTRACTS_FAIL
  SUBSCRIPTION_CONTRACTS_EXPIRE SUBSCRIPTION_BILLING_CYCLES_SKIP SUBSCRIPTION_BILLING_CYCLES_UNSKIP
  METAOBJECTS_CREATE METAOBJECTS_UPDATE METAOBJECTS_DELETE DISCOUNTS_CREATE DISCOUNTS_UPDATE
  DISCOUNTS_DELETE DISCOUNTS_REDEEMCODE_ADDED DISCOUNTS_REDEEMCODE_REMOVED METAFIELD_DEFINITIONS_CREATE
  METAFIELD_DEFINITIONS_UPDATE METAFIELD_DEFINITIONS_DELETE DELIVERY_PROMISE_SETTINGS_UPDATE
}
'''


# -- scalars and ids -------------------------------------------------------------------------------------------
def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise GraphQLError(f"{value!r} is not a decimal")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise GraphQLError(f"{value!r} is not a decimal") from None


def _decimal_literal(node: Any, _variables: Any = None) -> Decimal:
    if isinstance(node, graphql.StringValueNode | graphql.IntValueNode | graphql.FloatValueNode):
        return _decimal(node.value)
    raise GraphQLError("a decimal is a string or a number")


def build() -> graphql.GraphQLSchema:
    schema = graphql.build_schema(SDL)
    for name in ("Money", "Decimal"):
        scalar = schema.type_map[name]
        # Shopify sends amounts as strings; graphql-core 3.2 names the hooks serialize/parse_*, 3.3 coerce_*
        for hook, fn in (("serialize", str), ("coerce_output_value", str), ("parse_value", _decimal),
                         ("coerce_input_value", _decimal), ("parse_literal", _decimal_literal),
                         ("coerce_input_literal", _decimal_literal)):
            if hasattr(scalar, hook):
                setattr(scalar, hook, fn)
    return schema


def gid(kind: str, value: Any) -> str:
    return f"{GID}{kind}/{value}"


def legacy(value: Any, kind: str) -> int | None:
    """The integer id of `gid://shopify/<kind>/<n>` (None when it is not one of that kind)."""
    m = re.fullmatch(rf"{re.escape(GID)}{kind}/(\d+)(?:\?.*)?", str(value or ""))
    return int(m.group(1)) if m else None


def utc(text: Any) -> str | None:
    """A REST timestamp (any offset) as GraphQL's DateTime (UTC, `Z`)."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_z() -> str:
    return utc(datetime.now(UTC).isoformat())  # type: ignore[return-value]


def money(amount: Any, currency: str) -> dict[str, Any]:
    m = {"amount": Decimal(str(amount if amount not in (None, "") else "0")), "currencyCode": currency}
    return {"shopMoney": m, "presentmentMoney": m}


def money_from(rest_set: Any, amount: Any, currency: str) -> dict[str, Any]:
    """A MoneyBag from a REST `*_set` (its shop and presentment money), else from the plain amount."""
    if isinstance(rest_set, dict) and isinstance(rest_set.get("shop_money"), dict):
        shop = rest_set["shop_money"]
        pres = rest_set.get("presentment_money") or shop
        return {"shopMoney": {"amount": Decimal(str(shop.get("amount") or "0")),
                              "currencyCode": shop.get("currency_code") or currency},
                "presentmentMoney": {"amount": Decimal(str(pres.get("amount") or "0")),
                                     "currencyCode": pres.get("currency_code") or currency}}
    return money(amount, currency)


def connection(items: list[Any], first: int | None = None, after: str | None = None,
               reverse: bool = False) -> dict[str, Any]:
    """A Relay connection over `items` (cursors are offsets)."""
    if reverse:
        items = list(reversed(items))
    try:
        start = int(base64.urlsafe_b64decode(after.encode()).decode()) + 1 if after else 0
    except ValueError:
        raise GraphQLError(f"Invalid cursor {after!r}") from None
    size = 50 if first is None else first
    if size < 0 or size > 250:
        raise GraphQLError("The 'first' argument must be between 0 and 250")
    page = items[start:start + size]

    def cursor(i: int) -> str:
        return base64.urlsafe_b64encode(str(i).encode()).decode()

    return {"nodes": page, "edges": [{"node": n, "cursor": cursor(start + i)} for i, n in enumerate(page)],
            "pageInfo": {"hasNextPage": start + size < len(items), "hasPreviousPage": start > 0,
                         "startCursor": cursor(start) if page else None,
                         "endCursor": cursor(start + len(page) - 1) if page else None}}


def _conn(items_fn: Callable[[], list[Any]]) -> Callable[..., dict[str, Any]]:
    return lambda info, first=None, after=None, reverse=False, **_: connection(items_fn(), first, after, reverse)


def _first(items_fn: Callable[[], list[Any]]) -> Callable[..., list[Any]]:
    return lambda info, first=None, **_: items_fn()[:first] if first is not None else items_fn()


# -- cost ------------------------------------------------------------------------------------------------------
def _arg(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for a in node.arguments or ():
        if a.name.value == name:
            return graphql.value_from_ast(a.value, GraphQLInt, variables)
    return None


def _selections(selection_set: Any, fragments: dict[str, Any]) -> list[FieldNode]:
    out: list[FieldNode] = []
    for sel in (selection_set.selections if selection_set else ()):
        if isinstance(sel, FieldNode):
            out.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            out += _selections(sel.selection_set, fragments)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
            out += _selections(fragments[sel.name.value].selection_set, fragments)
    return out


def _cost(parent: Any, selection_set: Any, fragments: dict[str, Any], variables: dict[str, Any]) -> int:
    total = 0
    for node in _selections(selection_set, fragments):
        fields = getattr(parent, "fields", None) or {}
        field = fields.get(node.name.value)
        if field is None:
            continue
        named = graphql.get_named_type(field.type)
        if not isinstance(named, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
            continue  # scalars and enums cost nothing
        if named.name.endswith("Connection"):
            first = _arg(node, "first", variables) or _arg(node, "last", variables) or 0
            per_node = sum(_cost(named, _Only(sel), fragments, variables)
                           for sel in _selections(node.selection_set, fragments) if sel.name.value != "pageInfo")
            total += 2 + int(first) * per_node
        elif named.name.endswith("Edge"):
            total += _cost(named, node.selection_set, fragments, variables)  # the edge's node counts
        else:
            total += 1 + _cost(named, node.selection_set, fragments, variables)
    return total


class _Only:
    """A selection set of one field (to cost a connection's `nodes`/`edges` without its `pageInfo`)."""

    def __init__(self, node: FieldNode) -> None:
        self.selections = (node,)


def requested_cost(schema: graphql.GraphQLSchema, op: OperationDefinitionNode, fragments: dict[str, Any],
                   variables: dict[str, Any]) -> int:
    """Shopify's requested cost, roughly: objects 1, connections 2 + first x their node, mutations 10."""
    if op.operation == OperationType.MUTATION:
        return 10 * len(_selections(op.selection_set, fragments))
    return _cost(schema.query_type, op.selection_set, fragments, variables)


def actual_cost(data: Any) -> int:
    """What the answer holds: one point per object returned (connections and their wrappers aside)."""
    if isinstance(data, list):
        return sum(actual_cost(d) for d in data)
    if isinstance(data, dict):
        own = 0 if ("nodes" in data or "edges" in data or "shopMoney" in data) else 1
        return own + sum(actual_cost(v) for v in data.values())
    return 0


class Bucket:
    """The shop's cost bucket (a leaky bucket restored at `restore_rate` points a second)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Shopify's defaults, the bucket full."""
        self.maximum, self.restore_rate, self.max_query_cost = MAXIMUM_AVAILABLE, RESTORE_RATE, MAX_QUERY_COST
        self._available, self._at = MAXIMUM_AVAILABLE, time.monotonic()

    def available(self) -> float:
        now = time.monotonic()
        self._available = min(self.maximum, self._available + self.restore_rate * (now - self._at))
        self._at = now
        return self._available

    def take(self, cost: float) -> bool:
        with self.lock:
            if self.available() < cost:
                return False
            self._available -= cost
            return True

    def give(self, points: float) -> None:
        with self.lock:
            self._available = min(self.maximum, self.available() + points)

    def set(self, maximum: Any = None, restore_rate: Any = None, available: Any = None,
            max_query_cost: Any = ...) -> None:
        with self.lock:
            self.available()
            if maximum is not None:
                self.maximum = float(maximum)
            if restore_rate is not None:
                self.restore_rate = float(restore_rate)
            if max_query_cost is not ...:
                self.max_query_cost = None if max_query_cost is None else int(max_query_cost)
            self._available = min(self.maximum, float(available) if available is not None else self._available)

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {"maximumAvailable": self.maximum, "currentlyAvailable": int(self.available()),
                    "restoreRate": self.restore_rate}


# -- views: REST records as GraphQL objects (dicts; a callable value resolves a field with arguments) ------------
class Views:
    def __init__(self, shop: Any) -> None:
        self.shop = shop
        self.store = shop.store

    # orders
    def order(self, o: dict[str, Any]) -> dict[str, Any]:
        cur = o.get("currency") or "USD"
        oid = o["id"]
        customer = o.get("customer") or None
        return {
            "id": gid("Order", oid), "name": o.get("name") or f"#{oid}",
            "createdAt": utc(o.get("created_at")) or now_z(), "updatedAt": utc(o.get("updated_at") or
                                                                               o.get("created_at")) or now_z(),
            "processedAt": utc(o.get("processed_at") or o.get("created_at")) or now_z(),
            "cancelledAt": utc(o.get("cancelled_at")),
            "cancelReason": str(o["cancel_reason"]).upper() if o.get("cancelled_at") and o.get("cancel_reason")
            else None,
            "test": bool(o.get("test")), "taxesIncluded": bool(o.get("taxes_included")), "currencyCode": cur,
            "email": o.get("email"), "note": o.get("note"),
            "tags": [t.strip() for t in str(o.get("tags") or "").split(",") if t.strip()],
            "displayFinancialStatus": self.financial_status(o),
            "displayFulfillmentStatus": self.fulfillment_status(o),
            "discountCodes": [c.get("code") for c in o.get("discount_codes") or [] if c.get("code")],
            "totalPriceSet": money_from(o.get("total_price_set"), o.get("total_price"), cur),
            "totalDiscountsSet": money_from(o.get("total_discounts_set"), o.get("total_discounts"), cur),
            "customer": None if not customer else {
                "id": gid("Customer", customer.get("id")), "firstName": customer.get("first_name"),
                "lastName": customer.get("last_name"), "email": customer.get("email"),
                "taxExempt": bool(customer.get("tax_exempt"))},
            "shippingAddress": self.address(o.get("shipping_address")),
            "billingAddress": self.address(o.get("billing_address")),
            "lineItems": _conn(lambda: [self.line_item(li, cur) for li in o.get("line_items") or []]),
            "shippingLines": lambda info, includeRemovals=False, first=None, after=None, reverse=False, **_:
                connection([self.shipping_line(s, cur) for s in o.get("shipping_lines") or []
                            if includeRemovals or not s.get("is_removed")], first, after, reverse),
            "fulfillments": _first(lambda: [self.fulfillment(f) for f in
                                            self.store.find("fulfillments", order_id=oid)]),
            "fulfillmentOrders": _conn(lambda: [self.fulfillment_order(fo, o) for fo in
                                                self.store.find("fulfillment_orders", order_id=oid)]),
            "refunds": _first(lambda: [self.refund(r, cur) for r in self.store.find("refunds", order_id=oid)]),
            "suggestedRefund": lambda info, **args: self.suggested_refund(o, **args),
        }

    def financial_status(self, o: dict[str, Any]) -> str | None:
        txs = self.store.find("transactions", order_id=o["id"])
        paid = sum((Decimal(t["amount"]) for t in txs if t["kind"] in ("sale", "capture")), Decimal(0))
        back = sum((Decimal(t["amount"]) for t in txs if t["kind"] == "refund"), Decimal(0))
        if back > 0:
            return "REFUNDED" if back >= paid else "PARTIALLY_REFUNDED"
        status = str(o.get("financial_status") or "").upper()
        return status if status in {"PENDING", "AUTHORIZED", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "VOIDED",
                                    "PAID", "REFUNDED", "EXPIRED"} else None

    def fulfillment_status(self, o: dict[str, Any]) -> str:
        lines = [li for fo in self.store.find("fulfillment_orders", order_id=o["id"]) for li in fo["line_items"]]
        left = sum(li["fulfillable_quantity"] for li in lines)
        total = sum(li["quantity"] for li in lines)
        if total and left == 0:
            return "FULFILLED"
        return "PARTIALLY_FULFILLED" if left < total else "UNFULFILLED"

    @staticmethod
    def address(a: Any) -> dict[str, Any] | None:
        if not isinstance(a, dict):
            return None
        return {"name": a.get("name"), "firstName": a.get("first_name"), "lastName": a.get("last_name"),
                "company": a.get("company"), "address1": a.get("address1"), "address2": a.get("address2"),
                "city": a.get("city"), "province": a.get("province"), "provinceCode": a.get("province_code"),
                "zip": a.get("zip"), "country": a.get("country"), "countryCodeV2": a.get("country_code"),
                "phone": a.get("phone")}

    @staticmethod
    def _taxes(raw: Any, cur: str) -> list[dict[str, Any]]:
        return [{"title": t.get("title") or "", "rate": t.get("rate"),
                 "priceSet": money_from(t.get("price_set"), t.get("price"), cur)} for t in raw or []]

    @staticmethod
    def _discounts(raw: Any, cur: str) -> list[dict[str, Any]]:
        return [{"allocatedAmountSet": money_from(d.get("amount_set"), d.get("amount"), cur)} for d in raw or []]

    def line_item(self, li: dict[str, Any], cur: str) -> dict[str, Any]:
        variant = self.store.get("variants", str(li.get("variant_id"))) if li.get("variant_id") else None
        taxes = self._taxes(li.get("tax_lines"), cur)
        return {"id": gid("LineItem", li["id"]), "sku": li.get("sku"), "name": li.get("name") or li.get("title") or "",
                "title": li.get("title") or li.get("name") or "", "quantity": li["quantity"],
                "requiresShipping": bool(li.get("requires_shipping", True)), "taxable": bool(li.get("taxable", True)),
                "variant": self.variant(variant) if variant else (
                    {"id": gid("ProductVariant", li["variant_id"])} if li.get("variant_id") else None),
                "originalUnitPriceSet": money_from(li.get("price_set"), li.get("price"), cur),
                "discountAllocations": self._discounts(li.get("discount_allocations"), cur),
                "taxLines": lambda info, first=None, **_: taxes[:first] if first is not None else taxes}

    def shipping_line(self, s: dict[str, Any], cur: str) -> dict[str, Any]:
        return {"id": gid("ShippingLine", s["id"]) if s.get("id") else None, "code": s.get("code"),
                "title": s.get("title") or "", "originalPriceSet": money_from(s.get("price_set"), s.get("price"), cur),
                "discountAllocations": self._discounts(s.get("discount_allocations"), cur),
                "taxLines": self._taxes(s.get("tax_lines"), cur)}

    # fulfillment
    def fulfillment(self, f: dict[str, Any]) -> dict[str, Any]:
        numbers = f.get("tracking_numbers") or ([f["tracking_number"]] if f.get("tracking_number") else [])
        urls = f.get("tracking_urls") or []
        info = [{"number": n, "url": urls[i] if i < len(urls) else None, "company": f.get("tracking_company")}
                for i, n in enumerate(numbers)]
        return {"id": gid("Fulfillment", f["id"]), "name": f.get("name") or "", "status": str(f["status"]).upper(),
                "createdAt": utc(f.get("created_at")), "updatedAt": utc(f.get("updated_at") or f.get("created_at")),
                "trackingInfo": lambda info_, first=None, **_: info[:first] if first is not None else info}

    def fulfillment_order(self, fo: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
        cur = order.get("currency") or "USD"
        lines = {li["id"]: li for li in order.get("line_items") or []}
        return {"id": gid("FulfillmentOrder", fo["id"]), "status": str(fo["status"]).upper(),
                "assignedLocation": {"name": "Main warehouse", "location": {
                    **self.location(), "id": gid("Location", fo.get("assigned_location_id") or self.shop.location_id)}},
                "deliveryMethod": {"id": gid("DeliveryMethod", fo["id"]), "methodType": str(
                    (fo.get("delivery_method") or {}).get("method_type") or "shipping").upper()},
                "lineItems": _conn(lambda: [
                    {"id": gid("FulfillmentOrderLineItem", li["id"]), "remainingQuantity": li["fulfillable_quantity"],
                     "totalQuantity": li["quantity"], "sku": lines.get(li["line_item_id"], {}).get("sku"),
                     "lineItem": self.line_item(lines[li["line_item_id"]], cur)}
                    for li in fo["line_items"] if li["line_item_id"] in lines])}

    # refunds
    def refund(self, r: dict[str, Any], cur: str) -> dict[str, Any]:
        total = sum((Decimal(str(t["amount"])) for t in r.get("transactions") or []), Decimal(0))
        return {"id": gid("Refund", r["id"]), "note": r.get("note"), "createdAt": utc(r.get("created_at")),
                "totalRefundedSet": money(total, cur)}

    def suggested_refund(self, o: dict[str, Any], refundLineItems: Any = None, shippingAmount: Any = None,
                         refundShipping: Any = None, suggestFullRefund: bool = False, **_: Any) -> dict[str, Any]:
        cur = o.get("currency") or "USD"
        lines = {li["id"]: li for li in o.get("line_items") or []}
        refunded = self.shop.refunded_quantities(o["id"])
        amount = Decimal(0)
        wanted = list(refundLineItems or [])
        if suggestFullRefund:
            wanted = [{"lineItemId": gid("LineItem", i), "quantity": li["quantity"] - refunded.get(i, 0)}
                      for i, li in lines.items()]
        for item in wanted:
            li = lines.get(legacy(item.get("lineItemId"), "LineItem"))
            if li is None:
                raise GraphQLError(f"Line item {item.get('lineItemId')} does not exist on the order")
            qty = min(int(item.get("quantity") or 0), li["quantity"] - refunded.get(li["id"], 0))
            if qty > 0:
                subtotal, tax = self.shop.line_refund(li, qty)
                amount += subtotal + tax
        if shippingAmount is not None:
            amount += Decimal(str(shippingAmount))
        elif refundShipping:
            amount += sum((Decimal(str(s.get("price") or 0)) for s in o.get("shipping_lines") or []), Decimal(0))
        left = amount
        suggestions = []
        for t, remaining in self.shop.refundable(o["id"]):
            take = min(left, remaining)
            if take <= 0:
                continue
            left -= take
            suggestions.append({
                "gateway": t.get("gateway"), "kind": "SUGGESTED_REFUND", "amount": take, "amountSet": money(take, cur),
                "maximumRefundable": remaining, "maximumRefundableSet": money(remaining, cur),
                "parentTransaction": {"id": gid("OrderTransaction", t["id"]), "kind": str(t["kind"]).upper(),
                                      "gateway": t.get("gateway"), "amountSet": money(t["amount"], cur)}})
        return {"amountSet": money(amount - left, cur), "suggestedTransactions": suggestions}

    # products and inventory
    def variant(self, v: dict[str, Any]) -> dict[str, Any]:
        product = self.store.get("products", str(v["product_id"])) or {}
        return {"id": gid("ProductVariant", v["id"]), "sku": v.get("sku"), "title": v.get("title") or v.get("sku") or "",
                "price": Decimal(str(v.get("price") or "0.00")),
                "compareAtPrice": Decimal(str(v["compare_at_price"])) if v.get("compare_at_price") is not None
                else None,
                "product": {"id": gid("Product", v["product_id"]), "title": product.get("title") or ""},
                "inventoryItem": self.inventory_item(v)}

    def inventory_item(self, v: dict[str, Any]) -> dict[str, Any]:
        item = v["inventory_item_id"]
        return {"id": gid("InventoryItem", item), "sku": v.get("sku"),
                "inventoryLevel": lambda info, locationId: self.inventory_level(v, locationId)}

    def available(self, item: int) -> int:
        """The item's `available` count at the location: 0 until set (Shopify stocks a new variant at the
        shop's location with 0)."""
        level = self.store.get("inventory_levels", f"{self.shop.location_id}:{item}")
        return int(level["available"]) if level else 0

    def inventory_level(self, v: dict[str, Any], location_id: Any) -> dict[str, Any] | None:
        if legacy(location_id, "Location") != self.shop.location_id:
            return None
        item = v["inventory_item_id"]
        level = self.store.get("inventory_levels", f"{self.shop.location_id}:{item}") or {}
        count = self.available(item)

        def quantities(info: Any, names: list[str]) -> list[dict[str, Any]]:
            for n in names:
                if n not in QUANTITY_NAMES:
                    raise GraphQLError(f"Invalid quantity name: {n!r}")
            return [{"id": gid("InventoryQuantity", f"{self.shop.location_id}?inventory_item_id={item}&name={n}"),
                     "name": n, "quantity": count if n in ("available", "on_hand") else 0,
                     "updatedAt": utc(level.get("updated_at"))} for n in names]

        return {"id": gid("InventoryLevel", f"{self.shop.location_id}?inventory_item_id={item}"),
                "location": self.location(), "item": self.inventory_item(v), "quantities": quantities}

    def location(self) -> dict[str, Any]:
        return {"id": gid("Location", self.shop.location_id), "name": "Main warehouse", "isActive": True}

    @staticmethod
    def webhook(w: dict[str, Any]) -> dict[str, Any]:
        return {"id": gid("WebhookSubscription", w["id"]), "topic": w["topic"], "uri": w["uri"],
                "callbackUrl": w["uri"], "format": w["format"], "createdAt": w["created_at"],
                "updatedAt": w["updated_at"]}


# -- Shopify Payments views (REST records → GraphQL) ---------------------------------------------------------------
_GRAPHQL_TRANSACTION_TYPE = {"payout": "TRANSFER", "payout_failure": "TRANSFER_FAILURE",
                             "payout_cancellation": "TRANSFER_CANCEL", "charge": "CHARGE", "refund": "REFUND",
                             "dispute": "DISPUTE_WITHDRAWAL", "reserve": "RESERVED_FUNDS",
                             "reserved_funds": "RESERVED_FUNDS", "adjustment": "ADJUSTMENT",
                             "credit": "TAX_ADJUSTMENT_CREDIT", "debit": "TAX_ADJUSTMENT_DEBIT",
                             "application_fee_refund": "APPLICATION_FEE_REFUND"}
_SUMMARY_FIELDS = {"adjustmentsFee": "adjustments_fee_amount", "adjustmentsGross": "adjustments_gross_amount",
                   "chargesFee": "charges_fee_amount", "chargesGross": "charges_gross_amount",
                   "refundsFee": "refunds_fee_amount", "refundsFeeGross": "refunds_gross_amount",
                   "reservedFundsFee": "reserved_funds_fee_amount", "reservedFundsGross": "reserved_funds_gross_amount",
                   "retriedPayoutsFee": "retried_payouts_fee_amount",
                   "retriedPayoutsGross": "retried_payouts_gross_amount"}


def _money2(amount: Any, currency: str) -> dict[str, Any]:
    return {"amount": str(amount if amount is not None else "0.00"), "currencyCode": currency}


def _source_type(value: Any) -> str | None:
    """REST's `source_type` (`charge`, `payout`, `Payments::Refund`, …) as GraphQL's ShopifyPaymentsSourceType."""
    if not value:
        return None
    name = str(value).rsplit("::", 1)[-1].upper()
    return "TRANSFER" if name == "PAYOUT" else name


def _payout_view(p: dict[str, Any]) -> dict[str, Any]:
    cur = str(p.get("currency") or "USD").upper()
    summary = p.get("summary") or {}
    amount = Decimal(str(p.get("amount") or "0"))
    return {"id": gid("ShopifyPaymentsPayout", p["id"]), "legacyResourceId": str(p["id"]),
            "issuedAt": f"{str(p.get('date'))[:10]}T00:00:00Z", "net": _money2(p.get("amount"), cur),
            "status": str(p.get("status") or "").upper(), "transactionType": "DEPOSIT" if amount >= 0 else "WITHDRAWAL",
            "summary": {k: _money2(summary.get(v), cur) for k, v in _SUMMARY_FIELDS.items()}}


def _transaction_view(t: dict[str, Any]) -> dict[str, Any]:
    cur = str(t.get("currency") or "USD").upper()
    ttype = str(t.get("type") or "").lower()
    return {"id": gid("ShopifyPaymentsBalanceTransaction", t["id"]),
            "type": _GRAPHQL_TRANSACTION_TYPE.get(ttype, ttype.upper()), "test": bool(t.get("test")),
            "amount": _money2(t.get("amount"), cur), "fee": _money2(t.get("fee"), cur),
            "net": _money2(t.get("net"), cur),
            "sourceId": str(t["source_id"]) if t.get("source_id") is not None else None,
            "sourceType": _source_type(t.get("source_type")),
            "sourceOrderTransactionId": (str(t["source_order_transaction_id"])
                                         if t.get("source_order_transaction_id") is not None else None),
            "associatedOrder": ({"id": gid("Order", t["source_order_id"]), "name": f"#{t['source_order_id']}"}
                                if t.get("source_order_id") is not None else None),
            "associatedPayout": {"id": gid("ShopifyPaymentsPayout", t["payout_id"]) if t.get("payout_id") else None,
                                 "status": str(t.get("payout_status")).upper() if t.get("payout_status") else None},
            "transactionDate": utc(t.get("processed_at")), "adjustmentReason": t.get("adjustment_reason")}


# -- search syntax (the subset the client sends) --------------------------------------------------------------------
_TERM = re.compile(r"""(\w+):(>=|<=|>|<)?(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+))""")


def search_terms(query: str | None) -> list[tuple[str, str, str]]:
    """`field:value` terms of Shopify's search syntax as (field, comparator, value)."""
    out = []
    for m in _TERM.finditer(query or ""):
        value = m.group(3) if m.group(3) is not None else (m.group(4) if m.group(4) is not None else m.group(5))
        out.append((m.group(1).lower(), m.group(2) or "=", re.sub(r"\\(.)", r"\1", value)))
    return out


def _compare(left: Any, op: str, right: Any) -> bool:
    return {"=": left == right, ">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right}[op]


def _when(text: Any) -> datetime:
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- resolvers --------------------------------------------------------------------------------------------------
class Resolvers:
    def __init__(self, shop: Any) -> None:
        self.shop = shop
        self.store = shop.store
        self.views = Views(shop)
        self.lock = threading.Lock()

    def _order(self, global_id: Any) -> dict[str, Any] | None:
        oid = legacy(global_id, "Order")
        return self.store.get("orders", str(oid)) if oid is not None else None

    # queries
    def query_root(self) -> dict[str, Any]:
        return {"order": lambda info, id: (lambda o: self.views.order(o) if o else None)(self._order(id)),
                "fulfillmentOrder": self.fulfillment_order,
                "orders": self.orders, "productVariants": self.product_variants, "locations": self.locations,
                "inventoryItem": self.inventory_item, "webhookSubscriptions": self.webhook_subscriptions,
                "shopifyPaymentsAccount": self.payments_account}

    def fulfillment_order(self, info: Any, id: Any) -> dict[str, Any] | None:
        fid = legacy(id, "FulfillmentOrder")
        fo = self.store.get("fulfillment_orders", str(fid)) if fid is not None else None
        order = self.store.get("orders", str(fo["order_id"])) if fo else None
        return self.views.fulfillment_order(fo, order) if fo and order else None

    def orders(self, info: Any, first: int | None = None, after: str | None = None, reverse: bool = False,
               sortKey: str = "PROCESSED_AT", query: str | None = None, **_: Any) -> dict[str, Any]:
        orders = list(self.store.collection("orders").values())
        for field, op, value in search_terms(query):
            if field in ("updated_at", "created_at", "processed_at"):
                try:
                    bound = _when(value)
                except ValueError:
                    raise GraphQLError(f"Invalid date in query: {value!r}") from None
                orders = [o for o in orders if _compare(_when(o.get(field) or o.get("created_at")), op, bound)]
            elif field == "id":
                orders = [o for o in orders if _compare(int(o["id"]), op, int(legacy(value, "Order") or value))]
        keys = {"UPDATED_AT": lambda o: (_when(o.get("updated_at") or o["created_at"]), o["id"]),
                "CREATED_AT": lambda o: (_when(o["created_at"]), o["id"]), "ID": lambda o: (o["id"],)}
        orders.sort(key=keys.get(sortKey, lambda o: (_when(o.get("processed_at") or o["created_at"]), o["id"])))
        return connection([self.views.order(o) for o in orders], first, after, reverse)

    def product_variants(self, info: Any, first: int | None = None, after: str | None = None,
                         reverse: bool = False, query: str | None = None, **_: Any) -> dict[str, Any]:
        variants = list(self.store.collection("variants").values())
        for field, _op, value in search_terms(query):
            if field == "sku":  # Shopify's search matches SKUs by token prefix, not only exactly
                variants = [v for v in variants if str(v.get("sku") or "").lower().startswith(value.lower())]
            elif field == "product_id":
                variants = [v for v in variants if str(v["product_id"]) == value]
        return connection([self.views.variant(v) for v in variants], first, after, reverse)

    # Shopify Payments: the payouts and balance transactions seeded in their REST shape (POST /_admin/payouts)
    def payments_account(self, info: Any) -> dict[str, Any]:
        return {"id": gid("ShopifyPaymentsAccount", 1), "activated": True, "defaultCurrency": "USD",
                "payouts": self.payouts, "balanceTransactions": self.balance_transactions}

    def payouts(self, info: Any, first: int | None = None, after: str | None = None, reverse: bool = False,
                query: str | None = None, **_: Any) -> dict[str, Any]:
        rows = list(self.store.collection("payouts").values())
        for field, op, value in search_terms(query):
            if field == "issued_at":
                rows = [p for p in rows if _compare(str(p.get("date"))[:10], op, value[:10])]
            elif field == "status":
                rows = [p for p in rows if str(p.get("status")).upper() == value.upper()]
        rows.sort(key=lambda p: (str(p.get("date")), int(p["id"])), reverse=True)  # most recent first
        return connection([_payout_view(p) for p in rows], first, after, reverse)

    def balance_transactions(self, info: Any, first: int | None = None, after: str | None = None,
                             reverse: bool = False, query: str | None = None, hideTransfers: bool = False,
                             **_: Any) -> dict[str, Any]:
        rows = list(self.store.collection("balance_transactions").values())
        for field, _op, value in search_terms(query):
            if field == "payments_transfer_id":
                rows = [t for t in rows if str(t.get("payout_id")) == value]
        if hideTransfers:
            rows = [t for t in rows if t.get("type") != "payout"]
        rows.sort(key=lambda t: (str(t.get("processed_at")), int(t["id"])))
        return connection([_transaction_view(t) for t in rows], first, after, reverse)

    def locations(self, info: Any, first: int | None = None, after: str | None = None, reverse: bool = False,
                  **_: Any) -> dict[str, Any]:
        return connection([self.views.location()], first, after, reverse)

    def inventory_item(self, info: Any, id: str) -> dict[str, Any] | None:
        item = legacy(id, "InventoryItem")
        found = self.store.find("variants", inventory_item_id=item) if item is not None else []
        return self.views.inventory_item(found[0]) if found else None

    def webhook_subscriptions(self, info: Any, first: int | None = None, after: str | None = None,
                              reverse: bool = False, topics: list[str] | None = None, callbackUrl: str | None = None,
                              format: str | None = None, **_: Any) -> dict[str, Any]:
        subs = [w for w in self.store.collection("webhook_subscriptions").values()
                if (not topics or w["topic"] in topics) and (not callbackUrl or w["uri"] == callbackUrl)
                and (not format or w["format"] == format)]
        return connection([self.views.webhook(w) for w in subs], first, after, reverse)

    # mutations
    def mutation_root(self) -> dict[str, Any]:
        return {"fulfillmentCreate": self.fulfillment_create, "orderCancel": self.order_cancel,
                "refundCreate": self.refund_create, "tagsAdd": self.tags_add,
                "inventorySetQuantities": self.inventory_set_quantities,
                "productVariantsBulkUpdate": self.variants_bulk_update,
                "webhookSubscriptionCreate": self.webhook_subscription_create}

    @staticmethod
    def _error(exc: Any) -> dict[str, Any]:
        return {"field": exc.field, "message": exc.message}

    def fulfillment_create(self, info: Any, fulfillment: dict[str, Any], message: str | None = None) -> dict:
        groups = []
        for i, g in enumerate(fulfillment["lineItemsByFulfillmentOrder"]):
            fo = legacy(g["fulfillmentOrderId"], "FulfillmentOrder")
            if fo is None:
                return {"fulfillment": None, "userErrors": [{
                    "field": ["fulfillment", "lineItemsByFulfillmentOrder", str(i), "fulfillmentOrderId"],
                    "message": "Fulfillment order does not exist."}]}
            items = g.get("fulfillmentOrderLineItems")
            groups.append({"fulfillment_order_id": fo, "fulfillment_order_line_items": None if items is None else [
                {"id": legacy(li["id"], "FulfillmentOrderLineItem"), "quantity": li["quantity"]} for li in items]})
        t = fulfillment.get("trackingInfo") or {}
        tracking = {"number": t.get("number") or next(iter(t.get("numbers") or []), None),
                    "url": t.get("url") or next(iter(t.get("urls") or []), None), "company": t.get("company")}
        try:
            record = self.shop.fulfil(groups, tracking)
        except self.shop.Refused as exc:
            if exc.status == 404:
                exc.message = "Fulfillment order does not exist."
            return {"fulfillment": None, "userErrors": [self._error(exc)]}
        return {"fulfillment": self.views.fulfillment(record), "userErrors": []}

    def order_cancel(self, info: Any, orderId: str, reason: str, restock: bool, refund: bool | None = None,
                     refundMethod: Any = None, notifyCustomer: bool = False, staffNote: str | None = None) -> dict:
        oid = legacy(orderId, "Order")
        try:
            if oid is None:
                raise self.shop.Refused(404, "Not Found", field=["orderId"], code="NOT_FOUND")
            order = self.shop.cancel(oid, reason.lower())
            if staffNote:
                order["note"] = staffNote
        except self.shop.Refused as exc:
            if exc.status == 404:
                exc.message = "Order does not exist"
            error = {"field": exc.field, "message": exc.message, "code": exc.code or "INVALID"}
            return {"job": None, "orderCancelUserErrors": [error], "userErrors": [self._error(exc)]}
        job = hashlib.sha1(f"cancel:{oid}".encode()).hexdigest()[:12]
        return {"job": {"id": gid("Job", job), "done": True}, "orderCancelUserErrors": [], "userErrors": []}

    def refund_create(self, info: Any, input: dict[str, Any]) -> dict:
        oid = legacy(input["orderId"], "Order")
        body: dict[str, Any] = {"note": input.get("note"), "refund_line_items": [], "transactions": []}
        for li in input.get("refundLineItems") or []:
            body["refund_line_items"].append({"line_item_id": legacy(li["lineItemId"], "LineItem"),
                                              "quantity": li["quantity"],
                                              "restock_type": str(li.get("restockType") or "NO_RESTOCK").lower()})
        for t in input.get("transactions") or []:
            body["transactions"].append({"parent_id": legacy(t.get("parentId"), "OrderTransaction"),
                                         "amount": str(t["amount"]), "kind": str(t["kind"]).lower(),
                                         "gateway": t["gateway"]})
        try:
            if oid is None:
                raise self.shop.Refused(404, "Not Found", field=["orderId"])
            record = self.shop.refund_order(oid, body)
        except self.shop.Refused as exc:
            if exc.status == 404:
                exc.message = "Order does not exist"
            return {"refund": None, "order": None, "userErrors": [self._error(exc)]}
        order = self.store.get("orders", str(oid))
        return {"refund": self.views.refund(record, order.get("currency") or "USD"),
                "order": self.views.order(order), "userErrors": []}

    def tags_add(self, info: Any, id: str, tags: list[str]) -> dict:
        oid = legacy(id, "Order")
        try:
            if oid is None:
                raise self.shop.Refused(404, "Not Found", field=["id"])
            order = self.shop.add_tags(oid, tags)
        except self.shop.Refused as exc:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Resource does not exist" if
                                                  exc.status == 404 else exc.message}]}
        return {"node": {"id": gid("Order", order["id"]), "__typename": "Order"}, "userErrors": []}

    def inventory_set_quantities(self, info: Any, input: dict[str, Any]) -> dict:
        key = _idempotency_key(info)
        if key is None:
            return self._set_quantities(input)
        fingerprint = json.dumps(input, sort_keys=True, default=str)
        with self.lock:  # one write per key, replayed to every repeat
            seen = self.store.get("graphql_idempotency", f"inventorySetQuantities:{key}")
            if seen is not None:
                if seen["fingerprint"] != fingerprint:
                    return {"inventoryAdjustmentGroup": None, "userErrors": [{
                        "field": None, "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        "message": "The same idempotency key cannot be used with different operation parameters."}]}
                return seen["result"]
            result = self._set_quantities(input)
            self.store.put("graphql_idempotency", f"inventorySetQuantities:{key}",
                           {"fingerprint": fingerprint, "result": result})
            return result

    def _set_quantities(self, input: dict[str, Any]) -> dict:
        def refuse(field: list[str], code: str, message: str) -> dict:
            return {"inventoryAdjustmentGroup": None, "userErrors": [{"field": field, "code": code,
                                                                     "message": message}]}

        if input["name"] not in ("available", "on_hand"):
            return refuse(["input", "name"], "INVALID_NAME", "The quantity name must be either 'available' or "
                                                             "'on_hand'.")
        if input["reason"] not in INVENTORY_REASONS:
            return refuse(["input", "reason"], "INVALID_REASON", "The specified reason is invalid.")
        with self.store.lock:
            writes = []
            for i, q in enumerate(input["quantities"]):
                where = ["input", "quantities", str(i)]
                item = legacy(q["inventoryItemId"], "InventoryItem")
                variants = self.store.find("variants", inventory_item_id=item) if item is not None else []
                if not variants:
                    return refuse(where + ["inventoryItemId"], "INVALID_INVENTORY_ITEM",
                                  "The specified inventory item could not be found.")
                if legacy(q["locationId"], "Location") != self.shop.location_id:
                    return refuse(where + ["locationId"], "INVALID_LOCATION",
                                  "The specified location could not be found.")
                if q["quantity"] < 0 and input["name"] == "on_hand":
                    return refuse(where + ["quantity"], "INVALID_QUANTITY_NEGATIVE",
                                  "The quantity can't be negative.")
                if "changeFromQuantity" not in q:
                    return refuse(where + ["changeFromQuantity"], "COMPARE_QUANTITY_REQUIRED",
                                  "The changeFromQuantity argument must be given to each quantity (null opts out "
                                  "of the check).")
                current = self.views.available(item)
                if q["changeFromQuantity"] is not None and q["changeFromQuantity"] != current:
                    return refuse(where + ["changeFromQuantity"], "CHANGE_FROM_QUANTITY_STALE",
                                  "The changeFromQuantity value does not match persisted value.")
                writes.append((variants[0], item, current, q["quantity"]))
            changes = []
            for variant, item, current, target in writes:
                self.shop.set_available(item, self.shop.location_id, target)
                for name in ("available", "on_hand"):
                    changes.append({"name": name, "delta": target - current, "quantityAfterChange": target,
                                    "item": self.views.inventory_item(variant), "location": self.views.location()})
            group = self.store.ids.next_int("adjustment_group")
        return {"inventoryAdjustmentGroup": {
            "id": gid("InventoryAdjustmentGroup", group), "reason": input["reason"], "createdAt": now_z(),
            "referenceDocumentUri": input.get("referenceDocumentUri"),
            "changes": lambda info, quantityNames=None, **_: [c for c in changes
                                                               if not quantityNames or c["name"] in quantityNames]},
            "userErrors": []}

    def variants_bulk_update(self, info: Any, variants: list[dict[str, Any]], productId: str,
                             allowPartialUpdates: bool = False, **_: Any) -> dict:
        def refuse(field: list[str] | None, code: str, message: str) -> dict:
            return {"product": None, "productVariants": None,
                    "userErrors": [{"field": field, "code": code, "message": message}]}

        pid = legacy(productId, "Product")
        product = self.store.get("products", str(pid)) if pid is not None else None
        if product is None:
            return refuse(["productId"], "PRODUCT_DOES_NOT_EXIST", "Product does not exist")
        with self.store.lock:
            found = []
            for i, v in enumerate(variants):
                vid = legacy(v.get("id"), "ProductVariant")
                if not v.get("id"):
                    return refuse(["variants", str(i), "id"], "PRODUCT_VARIANT_ID_MISSING",
                                  "Product variant is missing ID attribute")
                record = self.store.get("variants", str(vid)) if vid is not None else None
                if record is None or record["product_id"] != product["id"]:
                    return refuse(["variants", str(i), "id"], "PRODUCT_VARIANT_DOES_NOT_EXIST",
                                  "Product variant does not exist")
                for name in ("price", "compareAtPrice"):
                    if v.get(name) is not None and v[name] < 0:
                        return refuse(["variants", str(i), name], "NEGATIVE_PRICE_VALUE",
                                      "Negative price value is not allowed")
                found.append((record, v))
            for record, v in found:
                if "price" in v and v["price"] is not None:
                    record["price"] = str(v["price"])
                if "compareAtPrice" in v:
                    record["compare_at_price"] = None if v["compareAtPrice"] is None else str(v["compareAtPrice"])
                record["updated_at"] = now_z()
        return {"product": {"id": gid("Product", product["id"]), "title": product.get("title") or ""},
                "productVariants": [self.views.variant(r) for r, _ in found], "userErrors": []}

    def webhook_subscription_create(self, info: Any, topic: str, webhookSubscription: dict[str, Any]) -> dict:
        uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
        if not uri or not re.match(r"^(https?://|pubsub://|arn:aws:events:)", str(uri)):
            return {"webhookSubscription": None, "userErrors": [
                {"field": ["webhookSubscription", "callbackUrl"], "message": "Address is invalid"}]}
        with self.store.lock:
            if any(w["topic"] == topic and w["uri"] == uri
                   for w in self.store.collection("webhook_subscriptions").values()):
                return {"webhookSubscription": None, "userErrors": [
                    {"field": ["webhookSubscription", "callbackUrl"],
                     "message": "Address for this topic has already been taken"}]}
            wid = self.store.ids.next_int("webhook_subscription")
            at = now_z()
            record = self.store.put("webhook_subscriptions", str(wid), {
                "id": wid, "topic": topic, "uri": uri, "format": webhookSubscription.get("format") or "JSON",
                "created_at": at, "updated_at": at})
        return {"webhookSubscription": self.views.webhook(record), "userErrors": []}


def _idempotency_key(info: Any) -> str | None:
    directive = info.schema.get_directive("idempotent")
    for node in info.field_nodes:
        values = graphql.get_directive_values(directive, node, info.variable_values)
        if values is not None:
            return str(values["key"])
    return None


def _resolve_type(value: Any, info: Any, abstract: Any) -> str | None:
    return value.get("__typename") if isinstance(value, dict) else None


# -- the endpoint ------------------------------------------------------------------------------------------------
def _json(body: dict[str, Any], version: str, status: int = 200) -> Response:
    return Response(json.dumps(body, default=str), status_code=status, media_type="application/json",
                    headers={"X-Shopify-API-Version": version})


def install_graphql(app: FastAPI, shop: Any) -> None:
    """`POST /admin/api/{version}/graphql.json` and `POST /_admin/graphql/throttle` on the Shopify sandbox app."""
    schema = build()
    schema.type_map["Node"].resolve_type = _resolve_type  # type: ignore[attr-defined]
    resolvers = Resolvers(shop)
    bucket = Bucket()
    app.state.graphql_schema = schema
    app.state.graphql_bucket = bucket
    if getattr(shop, "on_reset", None) is not None:
        shop.on_reset(bucket.reset)  # POST /_admin/reset: Shopify's defaults again

    @app.post("/_admin/graphql/throttle", tags=["sandbox admin"])
    async def throttle(request: Request) -> dict:
        """Set the cost bucket: maximumAvailable, restoreRate, currentlyAvailable, maxQueryCost (null: none)."""
        body = await request.json() if await request.body() else {}
        if not isinstance(body, dict):
            return JSONResponse({"errors": "a JSON object is expected"}, status_code=422)
        extra = {"max_query_cost": body["maxQueryCost"]} if "maxQueryCost" in body else {}
        bucket.set(body.get("maximumAvailable"), body.get("restoreRate"), body.get("currentlyAvailable"), **extra)
        return {"throttleStatus": bucket.status(), "maxQueryCost": bucket.max_query_cost}

    @app.post("/admin/api/{version}/graphql.json")
    async def graphql_endpoint(version: str, request: Request):
        if not shop.authorized(request):
            return shop.unauthorized()
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/graphql"):
            payload: Any = {"query": raw.decode()}
        else:
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                return _json({"errors": [{"message": "Invalid JSON in request body"}]}, version, 400)
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return _json({"errors": [{"message": "Parameter Missing or Invalid: query"}]}, version, 400)
        variables = payload.get("variables") or {}

        def cost(requested: int, actual: int | None) -> dict[str, Any]:
            return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                             "throttleStatus": bucket.status()}}

        try:
            document = graphql.parse(payload["query"])
        except GraphQLError as exc:
            return _json({"errors": [exc.formatted], "extensions": cost(0, 0)}, version)
        problems = graphql.validate(schema, document)
        if problems:
            return _json({"errors": [e.formatted for e in problems], "extensions": cost(0, 0)}, version)
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        name = payload.get("operationName")
        op = next((d for d in ops if d.name and d.name.value == name), None) if name else (ops[0] if len(ops) == 1
                                                                                            else None)
        if op is None:
            return _json({"errors": [{"message": "An operation name is required" if not name else
                                      f"No operation named {name!r}"}], "extensions": cost(0, 0)}, version)
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, graphql.FragmentDefinitionNode)}
        coerced = graphql.get_variable_values(schema, op.variable_definitions or [], variables)
        if isinstance(coerced, list):
            return _json({"errors": [e.formatted for e in coerced], "extensions": cost(0, 0)}, version)
        coerced = getattr(coerced, "coerced", coerced)  # graphql-core 3.3 returns VariableValues
        requested = requested_cost(schema, op, fragments, coerced)
        if bucket.max_query_cost is not None and requested > bucket.max_query_cost:
            return _json({"errors": [{"message": f"Query cost is {requested}, which exceeds the single query max "
                                                 f"cost limit ({bucket.max_query_cost}).",
                                      "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                                     "maxCost": bucket.max_query_cost}}],
                          "extensions": cost(requested, None)}, version)
        if not bucket.take(requested):
            return _json({"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": cost(requested, None)}, version)
        root = resolvers.mutation_root() if op.operation == OperationType.MUTATION else resolvers.query_root()
        result = graphql.execute(schema, document, root_value=root, variable_values=variables,
                                 operation_name=name)
        actual = requested if op.operation == OperationType.MUTATION else min(actual_cost(result.data), requested)
        bucket.give(requested - actual)  # Shopify refunds the difference once the query ran
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        body["data"] = result.data
        body["extensions"] = cost(requested, actual)
        return _json(body, version)
