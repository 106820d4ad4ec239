# Cloud side of clb-direct: the Redis KV table, the CAM role the functions run as, and the API gateway service
# that fronts the admission / router / health functions. The functions and their timers are deployed from
# serverless.yml (component multi-scf); this file creates what they reference.

terraform {
  required_providers {
    tencentcloud = {
      source  = "tencentcloudstack/tencentcloud"
      version = ">= 1.81.0"
    }
  }
}

provider "tencentcloud" {
  region = var.region
}

# --- KV table: TencentDB for Redis (production engine of shared/adapters/store_redis.py) ------------------------
resource "tencentcloud_redis_instance" "store" {
  name               = "clb-direct-${var.cluster_id}"
  availability_zone  = var.availability_zone
  type_id            = 8 # Redis 5.0 standard
  mem_size           = 1024
  vpc_id             = var.vpc_id
  subnet_id          = var.subnet_id
  password           = var.secret_values["redis_password"]
  port               = 6379
  redis_shard_num    = 1
  redis_replicas_num = 1
}

# --- the functions' execution role: CLB writes on this account, SCF async invoke of its own functions ---------
resource "tencentcloud_cam_role" "functions" {
  name          = "ClbDirectRole"
  description   = "clb-direct SCF functions: manage CLB backends for direct-access Services"
  console_login = false
  document = jsonencode({
    version = "2.0"
    statement = [{
      action    = ["name/sts:AssumeRole"]
      effect    = "allow"
      principal = { service = ["scf.qcloud.com"] }
    }]
  })
}

locals {
  clb_resource = "qcs::clb:${var.region}:uin/${var.owner_uin}:clb/*"
  # Every CLB clb-direct creates carries this tag (shared/steps/service.py, _owner_tags); CAM evaluates it.
  cluster_tag = "tke-clusterId&${var.cluster_id}"
  secrets = {
    redis_password     = "${var.ssm_prefix}-redis-password"
    cluster_token      = "${var.ssm_prefix}-cluster-token"
    relay_hmac_key     = "${var.ssm_prefix}-relay-hmac-key"
    health_notify_key  = "${var.ssm_prefix}-health-notify-key"
    health_alarm_token = "${var.ssm_prefix}-health-alarm-token"
  }
}

# Exactly the actions shared/adapters/tencent_clb.py, shared/adapters/invokers.py and shared/secrets.py call
# (tests/deploy/test_cloud_permissions.py compares both ways). Writes are limited to CLB instances tagged with
# this cluster's id; CreateLoadBalancer must carry that tag. Describe* and DescribeTaskStatus do not support
# resource-level authorisation and stay on "*". DeleteLoadBalancer is sent without ForceDelete; only when the
# API refuses (>= 20 backends or recent traffic) on a CLB tagged ours whose Service is gone does the adapter
# repeat it with ForceDelete (CAM cannot tell the two apart).
resource "tencentcloud_cam_policy" "functions" {
  name        = "ClbDirectFunctions"
  description = "Least privilege for clb-direct: its CLBs, Invoke of its own functions, its own secrets"
  document = jsonencode({
    version = "2.0"
    statement = [
      {
        effect   = "allow"
        action   = ["clb:DescribeLoadBalancers", "clb:DescribeListeners", "clb:DescribeTargets", "clb:DescribeTargetHealth", "clb:DescribeTaskStatus"]
        resource = ["*"]
      },
      {
        effect    = "allow"
        action    = ["clb:CreateLoadBalancer"]
        resource  = [local.clb_resource]
        condition = { "for_any_value:string_equal" = { "qcs:request_tag" = [local.cluster_tag] } }
      },
      {
        effect = "allow"
        action = [
          "clb:DeleteLoadBalancer", "clb:CreateListener", "clb:ModifyListener", "clb:DeleteListener",
          "clb:BatchRegisterTargets", "clb:BatchDeregisterTargets", "clb:BatchModifyTargetWeight",
        ]
        resource  = [local.clb_resource]
        condition = { "for_any_value:string_equal" = { "qcs:resource_tag" = [local.cluster_tag] } }
      },
      {
        effect   = "allow"
        action   = ["scf:Invoke"]
        resource = ["qcs::scf:${var.region}:uin/${var.owner_uin}:namespace/${var.scf_namespace}/function/clb-direct-${var.stage}-clb-direct-*"]
      },
      {
        effect   = "allow"
        action   = ["ssm:GetSecretValue"]
        resource = [for name in values(local.secrets) : "qcs::ssm:${var.region}:uin/${var.owner_uin}:secret/creatorUin/${var.owner_uin}/${name}"]
      },
    ]
  })
}

resource "tencentcloud_cam_role_policy_attachment" "functions" {
  role_id   = tencentcloud_cam_role.functions.id
  policy_id = tencentcloud_cam_policy.functions.id
}

# --- API gateway: the service and its four APIs, each with SCF integrated response ---------------------------
# multi-scf's own apigw trigger cannot enable integrated response (it rebuilds each API's function block), so
# the APIs live here. With integrated response the function's {statusCode, headers, body} is the HTTP answer:
# the API server gets the AdmissionReview JSON, the relay and Cloud Monitor get 401/503 where we mean it.
# Apply this file a second time after `sls deploy` (the APIs name the deployed functions).
resource "tencentcloud_api_gateway_service" "clb_direct" {
  service_name = "clb_direct"
  protocol     = "https"
  service_desc = "clb-direct: admission webhook, relay batches, health callbacks"
  net_type     = ["OUTER"]
  ip_version   = "IPv4"
}

locals {
  apis = {
    admission = { path = "/admission", timeout = 10, method = "POST" }
    router    = { path = "/router", timeout = 30, method = "POST" }
    health    = { path = "/health", timeout = 15, method = "POST" }
    # the kubelet's preStop httpGet: held until the Pod's CLB drain is done (<= its grace period)
    prestop = { path = "/prestop", timeout = 330, method = "GET" }
  }
}

resource "tencentcloud_api_gateway_api" "clb_direct" {
  for_each                           = var.functions_deployed ? local.apis : {}
  service_id                         = tencentcloud_api_gateway_service.clb_direct.id
  api_name                           = "clb_direct_${each.key}"
  api_desc                           = "clb-direct ${each.key} function"
  auth_type                          = "NONE" # each function authenticates its caller (see docs/operator-guide.md)
  protocol                           = "HTTP"
  request_config_path                = each.value.path
  request_config_method              = each.value.method
  service_type                       = "SCF"
  service_timeout                    = each.value.timeout
  service_scf_function_name          = "clb-direct-${var.stage}-clb-direct-${each.key}"
  service_scf_function_namespace     = var.scf_namespace
  service_scf_function_qualifier     = "$DEFAULT"
  service_scf_is_integrated_response = true
  response_type                      = "JSON"
}

resource "tencentcloud_api_gateway_service_release" "clb_direct" {
  count            = var.functions_deployed ? 1 : 0
  service_id       = tencentcloud_api_gateway_service.clb_direct.id
  environment_name = "release"
  release_desc     = "clb-direct APIs"
  depends_on       = [tencentcloud_api_gateway_api.clb_direct]
}

# Optional allowlist: only the cluster's egress addresses (API server, relay, kubelets) may call /admission,
# /router and /prestop. /health stays open to Cloud Monitor and authenticates every callback itself.
resource "tencentcloud_api_gateway_ip_strategy" "cluster_only" {
  count         = length(var.cluster_egress_ips) > 0 ? 1 : 0
  service_id    = tencentcloud_api_gateway_service.clb_direct.id
  strategy_name = "clb_direct_cluster_only"
  strategy_type = "WHITE"
  strategy_data = join("\n", var.cluster_egress_ips)
}

resource "tencentcloud_api_gateway_strategy_attachment" "cluster_only" {
  for_each         = var.functions_deployed && length(var.cluster_egress_ips) > 0 ? toset(["admission", "router", "prestop"]) : toset([])
  service_id       = tencentcloud_api_gateway_service.clb_direct.id
  strategy_id      = tencentcloud_api_gateway_ip_strategy.cluster_only[0].strategy_id
  environment_name = "release"
  bind_api_id      = tencentcloud_api_gateway_api.clb_direct[each.key].id
}

# --- secrets the functions resolve at cold start (values from variables; never in serverless.yml) -----------
resource "tencentcloud_ssm_secret" "clb_direct" {
  for_each              = local.secrets
  secret_name           = each.value
  description           = "clb-direct ${each.key}"
  is_delete_immediately = true
}

resource "tencentcloud_ssm_secret_version" "clb_direct" {
  for_each      = local.secrets
  secret_name   = tencentcloud_ssm_secret.clb_direct[each.key].secret_name
  version_id    = "v1"
  secret_string = var.secret_values[each.key]
}
