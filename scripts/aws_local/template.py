"""Reading template.yaml as CloudFormation and SAM do: the YAML with CloudFormation's short
tags (cfn-lint's loader), parameters with their defaults and constraints, conditions, the
intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`, `Fn::Join`, `Fn::Select`,
...), dynamic `{{resolve:secretsmanager:...}}` references, SAM's `Globals`, and the order
in which resources depend on each other.

Everything here is pure: values of resources come from the caller (`Resolver.refs` and
`Resolver.attrs`), secrets from its `lookup_secret`. A resource the local stack does not
emulate (IAM roles, security groups, EFS, ECS, log groups, alarms...) is given a
placeholder name and ARN, so that what refers to it still resolves.
"""

import base64
import json
import re

from cfnlint.decode import decode_str


class TemplateError(Exception):
    """The template cannot be deployed as written (or not locally): the message says why."""


# `AWS::NoValue`: the property is removed.
NO_VALUE = object()

ACCOUNT = "123456789012"

_SUB = re.compile(r"\$\{([^}]*)\}")
_DYNAMIC = re.compile(r"\{\{resolve:([a-z-]+):([^}]*)\}\}")
_LIST_TYPES = ("CommaDelimitedList", "List<")


def load(path):
    """The template at `path` as plain dicts and lists (short tags in their long form)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    template, problems = decode_str(text)
    if problems:
        raise TemplateError(f"{path}: " + "; ".join(str(p) for p in problems))
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path}: no Resources")
    return template


def pseudo_parameters(stack, region):
    """CloudFormation's pseudo parameters for a stack named `stack` in `region`."""
    return {
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": region,
        "AWS::StackName": stack,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{stack}/local",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


class Missing:
    """A parameter without a value: an error only when something needs it."""

    def __init__(self, name):
        self.name = name


def parameter_values(template, given):
    """The value of each parameter: `given` (name -> string), else its `Default`, checked
    against its type and constraints as CloudFormation does. A parameter with neither is a
    `Missing`. Lists (`CommaDelimitedList`, `List<...>`) become lists of strings."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"the template has no parameter {', '.join(unknown)}")
    values = {}
    for name, spec in declared.items():
        raw = given.get(name, spec.get("Default"))
        if raw is None:
            values[name] = Missing(name)
            continue
        kind = str(spec.get("Type", "String"))
        if kind.startswith(_LIST_TYPES):
            items = raw if isinstance(raw, list) else [s.strip() for s in str(raw).split(",")]
            items = [str(i) for i in items]
        else:
            items = [str(raw)]
        for item in items:
            _check_parameter(name, spec, kind, item)
        values[name] = items if kind.startswith(_LIST_TYPES) else items[0]
    return values


def _check_parameter(name, spec, kind, value):
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        raise TemplateError(f"parameter {name}={value}: not one of {', '.join(map(str, allowed))}")
    if kind in ("Number", "List<Number>"):
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value}: not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value}: below its MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value}: above its MaxValue {spec['MaxValue']}")
    if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), value):
        raise TemplateError(f"parameter {name}={value}: does not match {spec['AllowedPattern']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise TemplateError(f"parameter {name}: shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise TemplateError(f"parameter {name}: longer than {spec['MaxLength']}")


def generated_name(stack, logical, suffix):
    """The name CloudFormation gives a resource that names none: stack, logical id and a
    random suffix."""
    return f"{stack}-{logical}-{suffix}"


def _is_intrinsic(value):
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def merge_globals(globals_, local):
    """SAM's `Globals` rule: maps are merged (the resource's keys win), lists are the
    global entries followed by the resource's, anything else is the resource's."""
    if (isinstance(globals_, dict) and isinstance(local, dict)
            and not _is_intrinsic(globals_) and not _is_intrinsic(local)):
        out = dict(globals_)
        for key, value in local.items():
            out[key] = merge_globals(globals_[key], value) if key in globals_ else value
        return out
    if isinstance(globals_, list) and isinstance(local, list):
        return globals_ + local
    return local


def function_properties(template, logical):
    """The properties of the `AWS::Serverless::Function` `logical` with `Globals.Function`
    applied."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    props = template["Resources"][logical].get("Properties") or {}
    return merge_globals(globals_, props)


def references(value, resources):
    """The logical ids of resources that `value` refers to (Ref, GetAtt, Sub)."""
    found = set()

    def walk(v):
        if isinstance(v, dict):
            if "Ref" in v and len(v) == 1 and v["Ref"] in resources:
                found.add(v["Ref"])
            elif "Fn::GetAtt" in v and len(v) == 1:
                target = v["Fn::GetAtt"]
                name = target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
                if name in resources:
                    found.add(name)
            elif "Fn::Sub" in v and len(v) == 1:
                sub = v["Fn::Sub"]
                text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
                for m in _SUB.finditer(str(text)):
                    name = m.group(1).split(".", 1)[0]
                    if name in resources and name not in variables:
                        found.add(name)
                walk(variables)
            else:
                for item in v.values():
                    walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    return found


def creation_order(template, wanted):
    """`wanted` (logical ids) ordered so that each comes after the wanted resources it
    refers to or `DependsOn`."""
    resources = template["Resources"]
    wanted = set(wanted)
    deps = {}
    for logical in wanted:
        body = resources[logical]
        depends = body.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else list(depends)
        deps[logical] = (references(body.get("Properties"), resources) | set(depends)) & wanted
    order, done, visiting = [], set(), set()

    def visit(logical):
        if logical in done:
            return
        if logical in visiting:
            raise TemplateError(f"circular dependency through {logical}")
        visiting.add(logical)
        for dep in sorted(deps[logical]):
            visit(dep)
        visiting.discard(logical)
        done.add(logical)
        order.append(logical)

    for logical in sorted(wanted):
        visit(logical)
    return order


def parse_secret_reference(reference):
    """`{{resolve:secretsmanager:REFERENCE}}`'s parts: (secret id, json key, version stage,
    version id), the last three None when absent. The id may be a full ARN (with colons)."""
    parts = reference.split(":")
    if parts[0] == "arn":
        secret_id, rest = ":".join(parts[:7]), parts[7:]
    else:
        secret_id, rest = parts[0], parts[1:]
    if rest and rest[0] == "SecretString":
        rest = rest[1:]
    elif rest:
        raise TemplateError(f"secretsmanager reference {reference}: expected SecretString")
    rest = rest + [None] * (3 - len(rest))
    key, stage, version = [r or None for r in rest[:3]]
    return secret_id, key, stage, version


class Resolver:
    """Resolves template values for one stack. `refs` and `attrs` hold the values of the
    resources created so far (logical id -> Ref value, logical id -> {attribute: value});
    `lookup_secret(secret id, json key, stage, version)` answers dynamic references."""

    def __init__(self, template, params, pseudo, lookup_secret=None):
        self.template = template
        self.resources = template["Resources"]
        self.params = params
        self.pseudo = pseudo
        self.lookup_secret = lookup_secret
        self.refs = {}
        self.attrs = {}
        self.emulated = set()
        self._conditions = {}

    # -------------------------------------------------------------- conditions
    def condition(self, name):
        """The value of condition `name`."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"no condition {name}")
            self._conditions[name] = None
            self._conditions[name] = bool(self._condition_value(conditions[name]))
        if self._conditions[name] is None:
            raise TemplateError(f"condition {name} depends on itself")
        return self._conditions[name]

    def _condition_value(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self._condition_value(arg[0])
            if fn == "Fn::And":
                return all(self._condition_value(x) for x in arg)
            if fn == "Fn::Or":
                return any(self._condition_value(x) for x in arg)
        raise TemplateError(f"not a condition: {json.dumps(value)}")

    def exists(self, logical):
        """Whether resource `logical` is part of the stack (its `Condition` holds)."""
        cond = self.resources[logical].get("Condition")
        return cond is None or self.condition(cond)

    # -------------------------------------------------------------- values
    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            value = self.params[name]
            if isinstance(value, Missing):
                raise TemplateError(f"parameter {name} has no value: pass {name}=...")
            return value
        if name in self.resources:
            if not self.exists(name):
                raise TemplateError(f"{name} is referred to but its condition is false")
            if name in self.refs:
                return self.refs[name]
            if name in self.emulated:
                raise TemplateError(f"{name} is referred to before it exists")
            return self._placeholder(name, None)
        raise TemplateError(f"Ref to unknown {name}")

    def get_att(self, logical, attr):
        if logical not in self.resources:
            raise TemplateError(f"GetAtt of unknown resource {logical}")
        if not self.exists(logical):
            raise TemplateError(f"{logical} is referred to but its condition is false")
        if logical in self.attrs:
            if attr not in self.attrs[logical]:
                kind = self.resources[logical].get("Type")
                raise TemplateError(f"{logical} ({kind}) has no attribute {attr}")
            return self.attrs[logical][attr]
        if logical in self.emulated:
            raise TemplateError(f"{logical} is referred to before it exists")
        return self._placeholder(logical, attr)

    def _placeholder(self, logical, attr):
        kind = str(self.resources[logical].get("Type", ""))
        stack, region = self.pseudo["AWS::StackName"], self.pseudo["AWS::Region"]
        name = generated_name(stack, logical, "local")
        if attr is None:
            return name
        if attr == "Arn":
            service = kind.split("::")[1].lower() if kind.count("::") >= 2 else "local"
            return f"arn:aws:{service}:{region}:{ACCOUNT}:{logical}/{name}"
        return f"{name}.{attr}"

    def resolve(self, value):
        """`value` with every intrinsic function and dynamic reference resolved;
        `AWS::NoValue` removes the key or item (and is `NO_VALUE` at the top)."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref":
                    return self.ref(arg)
                if str(key).startswith("Fn::"):
                    return self._function(key, arg)
            out = {}
            for k, v in value.items():
                r = self.resolve(v)
                if r is not NO_VALUE:
                    out[str(k)] = r
            return out
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if isinstance(value, str):
            return self._dynamic(str(value))
        return value

    def _function(self, fn, arg):
        if fn == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(str(logical), str(self.resolve(attr)))
        if fn == "Fn::Sub":
            text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            return self._sub(str(text), self.resolve(variables))
        if fn == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no)
        if fn in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._condition_value({fn: arg})
        if fn == "Fn::Join":
            sep, items = arg
            return str(sep).join(_text(i) for i in self.resolve(items))
        if fn == "Fn::Select":
            index, items = self.resolve(arg[0]), self.resolve(arg[1])
            return items[int(index)]
        if fn == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(str(sep))
        if fn == "Fn::GetAZs":
            region = self.resolve(arg) or self.pseudo["AWS::Region"]
            return [f"{region}{zone}" for zone in "abc"]
        if fn == "Fn::Base64":
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if fn == "Fn::FindInMap":
            name, top, second = (self.resolve(a) for a in arg[:3])
            try:
                return self.resolve(self.template["Mappings"][name][top][second])
            except KeyError:
                raise TemplateError(f"FindInMap: no {name}/{top}/{second}") from None
        if fn == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if fn == "Fn::Length":
            return len(self.resolve(arg))
        raise TemplateError(f"{fn} is not supported locally")

    def _sub(self, text, variables):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                logical, attr = name.split(".", 1)
                return _text(self.get_att(logical, attr))
            return _text(self.ref(name))

        return self._dynamic(_SUB.sub(one, text))

    def _dynamic(self, text):
        if "{{resolve:" not in text:
            return text

        def one(m):
            service, reference = m.group(1), m.group(2)
            if service != "secretsmanager":
                raise TemplateError(f"dynamic references to {service} are not supported locally")
            if self.lookup_secret is None:
                raise TemplateError("a secretsmanager reference, but no Secrets Manager")
            return self.lookup_secret(*parse_secret_reference(reference))

        return _DYNAMIC.sub(one, text)


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        raise TemplateError(f"a list or map where text is expected: {json.dumps(value)}")
    return str(value)


def env_text(value):
    """An environment variable's value as the service writes it: numbers in decimal,
    booleans as true/false."""
    return _text(value)
