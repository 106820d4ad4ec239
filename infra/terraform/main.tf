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
  password           = var.redis_password
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

resource "tencentcloud_cam_policy" "functions" {
  name        = "ClbDirectFunctions"
  description = "Least privilege for clb-direct: CLB instance/listener/target APIs and SCF Invoke"
  document = jsonencode({
    version = "2.0"
    statement = [
      {
        effect = "allow"
        action = [
          "clb:CreateLoadBalancer", "clb:DeleteLoadBalancer", "clb:DescribeLoadBalancers",
          "clb:CreateListener", "clb:ModifyListener", "clb:DeleteListener", "clb:DescribeListeners",
          "clb:BatchRegisterTargets", "clb:BatchDeregisterTargets", "clb:BatchModifyTargetWeight",
          "clb:RegisterTargets", "clb:DeregisterTargets", "clb:ModifyTargetWeight",
          "clb:DescribeTargets", "clb:DescribeTargetHealth", "clb:DescribeTaskStatus",
        ]
        resource = ["*"]
      },
      {
        effect   = "allow"
        action   = ["scf:InvokeFunction", "scf:Invoke"]
        resource = ["qcs::scf:${var.region}:uin/${var.owner_uin}:namespace/${var.scf_namespace}/function/*"]
      },
    ]
  })
}

resource "tencentcloud_cam_role_policy_attachment" "functions" {
  role_id   = tencentcloud_cam_role.functions.id
  policy_id = tencentcloud_cam_policy.functions.id
}

# --- API gateway service that the admission webhook, the relay and CLB callbacks call ------------------------
resource "tencentcloud_api_gateway_service" "clb_direct" {
  service_name = "clb_direct"
  protocol     = "https"
  service_desc = "clb-direct: admission webhook, relay batches, health callbacks"
  net_type     = ["OUTER"]
  ip_version   = "IPv4"
}
