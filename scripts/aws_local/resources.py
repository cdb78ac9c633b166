"""The resources the local stack emulates, created in moto from their resolved template
properties as CloudFormation would create them: DynamoDB tables (key schema, GSIs, TTL,
streams, SSE, point-in-time recovery), SQS queues (FIFO, visibility, delay, redrive...),
S3 buckets and Secrets Manager secrets. Each answers its Ref value and its `Fn::GetAtt`
attributes. A property that moto cannot apply is reported as a warning, never dropped
silently.
"""

import json
from dataclasses import dataclass, field

import boto3
from botocore.config import Config

from .template import TemplateError, generated_name

EMULATED = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
)

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def client(service, endpoint, region, read_timeout=60):
    """A boto3 client of `service` on the emulator at `endpoint`."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        config=Config(read_timeout=read_timeout, retries={"max_attempts": 3, "mode": "standard"}),
        **CREDENTIALS,
    )


@dataclass
class Created:
    """A created resource: its Ref value, attributes, and a summary for the ready line."""

    ref: str
    attrs: dict
    summary: dict
    warnings: list = field(default_factory=list)


def create(kind, logical, props, stack, suffix, endpoint, region):
    """Creates resource `logical` of type `kind` from its resolved `props`."""
    make = {
        "AWS::DynamoDB::Table": _table,
        "AWS::SQS::Queue": _queue,
        "AWS::S3::Bucket": _bucket,
        "AWS::SecretsManager::Secret": _secret,
    }[kind]
    return make(logical, props, generated_name(stack, logical, suffix), endpoint, region)


def _unhandled(props, handled, logical):
    return [f"{logical}: {p} is not emulated locally" for p in sorted(set(props) - set(handled))]


# ------------------------------------------------------------------ DynamoDB
def table_request(name, props):
    """CreateTable's parameters for a table with these CloudFormation properties."""
    api = {"TableName": props.get("TableName", name),
           "BillingMode": props.get("BillingMode", "PROVISIONED")}
    for key in ("AttributeDefinitions", "KeySchema", "LocalSecondaryIndexes",
                "ProvisionedThroughput", "TableClass", "DeletionProtectionEnabled",
                "OnDemandThroughput", "Tags"):
        if key in props:
            api[key] = props[key]
    if "GlobalSecondaryIndexes" in props:
        api["GlobalSecondaryIndexes"] = [
            {k: v for k, v in gsi.items() if k != "ContributorInsightsSpecification"}
            for gsi in props["GlobalSecondaryIndexes"]
        ]
    if "StreamSpecification" in props:
        api["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "SSESpecification" in props:
        sse = dict(props["SSESpecification"])
        api["SSESpecification"] = {"Enabled": bool(sse.pop("SSEEnabled", False)), **sse}
    return api


_TABLE_PROPS = ("TableName", "BillingMode", "AttributeDefinitions", "KeySchema",
                "LocalSecondaryIndexes", "ProvisionedThroughput", "TableClass",
                "DeletionProtectionEnabled", "OnDemandThroughput", "Tags",
                "GlobalSecondaryIndexes", "StreamSpecification", "SSESpecification",
                "TimeToLiveSpecification", "PointInTimeRecoverySpecification")


def _table(logical, props, name, endpoint, region):
    ddb = client("dynamodb", endpoint, region)
    api = table_request(name, props)
    table = ddb.create_table(**api)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=api["TableName"], TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl.get("Enabled", False))})
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=api["TableName"], PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled", False))})
    attrs = {"Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attrs["StreamArn"] = table["LatestStreamArn"]
    return Created(api["TableName"], attrs, {"type": "table", "name": api["TableName"],
                                              "arn": table["TableArn"]},
                   _unhandled(props, _TABLE_PROPS, logical))


# ------------------------------------------------------------------ SQS
_QUEUE_ATTRS = ("ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue",
                "FifoThroughputLimit", "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId",
                "MaximumMessageSize", "MessageRetentionPeriod",
                "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled", "VisibilityTimeout")
_QUEUE_JSON_ATTRS = ("RedrivePolicy", "RedriveAllowPolicy")


def _attr_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def queue_request(name, props):
    """CreateQueue's parameters for a queue with these CloudFormation properties (a FIFO
    queue's generated name ends with `.fifo`, as CloudFormation makes it)."""
    fifo = str(props.get("FifoQueue", False)).lower() == "true"
    queue_name = props.get("QueueName") or (name + ".fifo" if fifo else name)
    if fifo != queue_name.endswith(".fifo"):
        raise TemplateError(f"queue {queue_name}: a FIFO queue's name, and only its, ends with .fifo")
    attributes = {k: _attr_text(props[k]) for k in _QUEUE_ATTRS + _QUEUE_JSON_ATTRS if k in props}
    if not fifo:
        attributes.pop("FifoQueue", None)
    api = {"QueueName": queue_name, "Attributes": attributes}
    if props.get("Tags"):
        api["tags"] = {t["Key"]: str(t["Value"]) for t in props["Tags"]}
    return api


def _queue(logical, props, name, endpoint, region):
    sqs = client("sqs", endpoint, region)
    api = queue_request(name, props)
    url = sqs.create_queue(**api)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attrs = {"Arn": arn, "QueueName": api["QueueName"], "QueueUrl": url}
    summary = {"type": "queue", "name": api["QueueName"], "url": url, "arn": arn}
    return Created(url, attrs, summary,
                   _unhandled(props, _QUEUE_ATTRS + _QUEUE_JSON_ATTRS + ("QueueName", "Tags"), logical))


# ------------------------------------------------------------------ S3
def lifecycle_rule(rule):
    """A CloudFormation lifecycle rule in PutBucketLifecycleConfiguration's shape."""
    out = {"Status": rule.get("Status", "Enabled")}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    expiration = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = bool(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    if "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return out


_BUCKET_PROPS = ("BucketName", "VersioningConfiguration", "BucketEncryption",
                 "PublicAccessBlockConfiguration", "OwnershipControls", "LifecycleConfiguration",
                 "CorsConfiguration", "Tags")


def _bucket(logical, props, name, endpoint, region):
    s3 = client("s3", endpoint, region)
    bucket = props.get("BucketName") or name.lower()[:63]
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"])
    if "BucketEncryption" in props:
        rules = [{("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                  for k, v in rule.items()}
                 for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=props["OwnershipControls"])
    if "LifecycleConfiguration" in props:
        rules = [lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    if "CorsConfiguration" in props:
        rules = [{("MaxAgeSeconds" if k == "MaxAge" else "ID" if k == "Id" else k): v
                  for k, v in r.items()} for r in props["CorsConfiguration"]["CorsRules"]]
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": props["Tags"]})
    attrs = {
        "Arn": f"arn:aws:s3:::{bucket}",
        "DomainName": f"{bucket}.s3.amazonaws.com",
        "RegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
        "WebsiteURL": f"http://{bucket}.s3-website-{region}.amazonaws.com",
    }
    return Created(bucket, attrs, {"type": "bucket", "name": bucket, "arn": attrs["Arn"]},
                   _unhandled(props, _BUCKET_PROPS, logical))


# ------------------------------------------------------------------ Secrets Manager
_GENERATE = ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation",
             "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")


def _secret(logical, props, name, endpoint, region):
    sm = client("secretsmanager", endpoint, region)
    secret_name = props.get("Name") or name
    if "SecretString" in props:
        value = str(props["SecretString"])
    else:
        spec = props.get("GenerateSecretString") or {}
        password = sm.get_random_password(**{k: spec[k] for k in _GENERATE if k in spec})["RandomPassword"]
        if "SecretStringTemplate" in spec:
            doc = json.loads(spec["SecretStringTemplate"])
            doc[spec["GenerateStringKey"]] = password
            value = json.dumps(doc)
        else:
            value = password
    api = {"Name": secret_name, "SecretString": value}
    if "Description" in props:
        api["Description"] = props["Description"]
    arn = sm.create_secret(**api)["ARN"]
    return Created(arn, {"Id": arn}, {"type": "secret", "name": secret_name, "arn": arn},
                   _unhandled(props, ("Name", "SecretString", "GenerateSecretString",
                                      "Description", "KmsKeyId", "Tags"), logical))


def create_jwt_secret(stack, suffix, value, endpoint, region):
    """The secret holding the tenant JWTs' HS256 key (the stack's `JwtSecretArn`)."""
    sm = client("secretsmanager", endpoint, region)
    return sm.create_secret(Name=f"{stack}/jwt-{suffix}", SecretString=value)["ARN"]


def secret_value(endpoint, region, secret_id, key=None, stage=None, version=None):
    """A secret's SecretString (or one `key` of it as JSON), as a dynamic reference or an
    ECS task's `Secrets` entry reads it."""
    sm = client("secretsmanager", endpoint, region)
    request = {"SecretId": secret_id}
    if version:
        request["VersionId"] = version
    elif stage:
        request["VersionStage"] = stage
    try:
        text = sm.get_secret_value(**request)["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        raise TemplateError(f"no secret {secret_id} in Secrets Manager") from None
    if key is None:
        return text
    try:
        return str(json.loads(text)[key])
    except (ValueError, KeyError, TypeError):
        raise TemplateError(f"secret {secret_id} has no JSON key {key}") from None
