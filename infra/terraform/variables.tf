variable "region" {
  type    = string
  default = "ap-guangzhou"
}

variable "availability_zone" {
  type    = string
  default = "ap-guangzhou-3"
}

variable "cluster_id" {
  type        = string
  description = "TKE cluster id (cls-...) the functions serve"
}

variable "vpc_id" {
  type = string
}

variable "subnet_id" {
  type = string
}

variable "owner_uin" {
  type        = string
  description = "account UIN, for the SCF Invoke resource scope"
}

variable "scf_namespace" {
  type    = string
  default = "default"
}


variable "stage" {
  type        = string
  default     = "prod"
  description = "the serverless.yml stage (STAGE); part of every deployed function name"
}

variable "functions_deployed" {
  type        = bool
  default     = false
  description = "false on the first apply; true after `sls deploy` created the functions the APIs call"
}

variable "ssm_prefix" {
  type    = string
  default = "clb-direct"
}

variable "secret_values" {
  type        = map(string)
  sensitive   = true
  description = "redis_password, cluster_token, relay_hmac_key, health_notify_key, health_alarm_token (e.g. TF_VAR_secret_values)"
}

variable "cluster_egress_ips" {
  type        = list(string)
  default     = []
  description = "public egress IPs/CIDRs of the cluster (NAT gateway, API server); when set only they may call /admission, /router, /prestop"
}
