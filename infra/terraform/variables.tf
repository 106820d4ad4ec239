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

variable "redis_password" {
  type      = string
  sensitive = true
}
