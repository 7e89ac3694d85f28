"""The admin REST API (GitLab v4 shapes, personal access tokens): one router per resource."""
