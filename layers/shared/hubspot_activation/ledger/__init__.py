"""The ledger table: its keys (``keys``), one codec per item kind (``contact_item``,
``audience_item``, ``exclusion_item``, ``daily_calls_item``, ``held_item`` for the held markers,
and ``issue_item`` for the sparse ``issues`` index's attributes) and the DynamoDB adapters that
read and write them (``contact_ledger``, ``audience_directory``, ``exclusion_store``, ``daily_counter``,
``operations_store``, ``list_buffer`` for the audience lists' membership changes).

No DynamoDB attribute value (``{"S": ...}``, ``{"N": ...}``, ``{"M": ...}`` ...) exists outside this
package: the functions see plain data (``LedgerEntry``, ``AudienceMetadata``, ``Issue`` ...) and the
ports their own packages define. The adapters take a boto3 DynamoDB client; they never build one.
"""
