output "store_url" {
  description = "Value for CLB_DIRECT_STORE_URL (password goes in the URL userinfo at deploy time)"
  value       = "redis://${tencentcloud_redis_instance.store.ip}:${tencentcloud_redis_instance.store.port}/0"
}

output "role_name" {
  value = tencentcloud_cam_role.functions.name
}

output "api_gateway_service_id" {
  value = tencentcloud_api_gateway_service.clb_direct.id
}

output "api_gateway_host" {
  description = "host of the gateway: WEBHOOK_URL = https://<host>/release/admission, the relay's router URL = .../router"
  value       = tencentcloud_api_gateway_service.clb_direct.outer_sub_domain
}
