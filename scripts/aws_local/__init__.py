"""The AWS stack of template.yaml on one machine (scripts/aws-local): moto for the AWS
services, each Lambda function's real binary behind a Lambda Runtime API emulator, API
Gateway's HTTP API in front of them, the SQS event source mappings, and the worker.

Modules: `template` (reading and resolving the template), `resources` (creating the
emulated resources in moto), `runtime` (the Lambda Runtime API and execution environments),
`apigw` (HTTP API routing, payload format 2.0, limits: pure), `front` (the HTTP server of an
HTTP API), `esm` (SQS event source mappings), `worker` (the ECS task's processes),
`tokens` (tenant JWTs), `httpio` (HTTP/1.1 bodies), `logs` (JSON-lines logs), `stack` (putting it together), `main`
(the command line).
"""
