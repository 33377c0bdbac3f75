//! Idempotent helpers for scripts that are re-run: "already exists" (409) on
//! create and "not found" (404) or 204 on delete count as success.

use futures::TryStreamExt;
use strata_core::Secret;

use crate::client::NeonClient;
use crate::error::Result;
use crate::ids::{BranchId, OperationId, ProjectId};
use crate::models::{Branch, BranchCreateRequest, Operation, OperationOutcome};

/// What an `ensure_*` call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It was created by this call.
    Created,
    /// It existed already.
    Existed,
}

impl NeonClient {
    /// The branch named `name`, if the project has one.
    pub async fn find_branch_by_name(&self, project_id: &ProjectId, name: &str) -> Result<Option<Branch>> {
        let mut branches = self.list_branches(project_id);
        while let Some(branch) = branches.try_next().await? {
            if branch.name == name {
                return Ok(Some(branch));
            }
        }
        Ok(None)
    }

    /// The branch whose id or name is `name_or_id`, if the project has one.
    pub async fn find_branch(&self, project_id: &ProjectId, name_or_id: &str) -> Result<Option<Branch>> {
        let branches = self.all_branches(project_id).await?;
        Ok(branches.into_iter().find(|branch| branch.id.as_str() == name_or_id || branch.name == name_or_id))
    }

    /// The id of the branch named (or with the id) `name_or_id`; `InvalidArgument` when there is none.
    pub async fn branch_id(&self, project_id: &ProjectId, name_or_id: &str) -> Result<BranchId> {
        match self.find_branch(project_id, name_or_id).await? {
            Some(branch) => Ok(branch.id),
            None => Err(crate::NeonError::InvalidArgument(format!(
                "no branch named {name_or_id:?} in project {project_id}"
            ))),
        }
    }

    /// The operations with these ids, or every unfinished one of the project when `ids` is empty.
    pub async fn operations_or_pending(&self, project_id: &ProjectId, ids: &[String]) -> Result<Vec<Operation>> {
        if ids.is_empty() {
            let all: Vec<Operation> = self.list_operations(project_id).try_collect().await?;
            return Ok(all.into_iter().filter(|operation| operation.outcome() == OperationOutcome::Pending).collect());
        }
        let mut operations = Vec::with_capacity(ids.len());
        for id in ids {
            operations.push(self.get_operation(project_id, &OperationId::new(id.as_str())).await?);
        }
        Ok(operations)
    }

    /// The project's default branch, if any.
    pub async fn default_branch(&self, project_id: &ProjectId) -> Result<Option<Branch>> {
        let branches = self.all_branches(project_id).await?;
        Ok(branches.into_iter().find(Branch::is_default))
    }

    /// Creates the branch `request.branch.name` unless a branch of that name exists, then waits
    /// for its operations. A 409 from a concurrent creator counts as "existed".
    pub async fn ensure_branch(
        &self,
        project_id: &ProjectId,
        request: &BranchCreateRequest,
    ) -> Result<(Branch, Ensured)> {
        let Some(name) = request.branch.name.clone() else {
            return Err(crate::NeonError::InvalidArgument("ensure_branch needs a branch name".into()));
        };
        if let Some(branch) = self.find_branch_by_name(project_id, &name).await? {
            return Ok((branch, Ensured::Existed));
        }
        match self.create_branch(project_id, request).await {
            Ok(created) => {
                self.wait_for_operations(project_id, &created.operations).await?;
                Ok((created.branch, Ensured::Created))
            }
            Err(error) if error.is_conflict() => match self.find_branch_by_name(project_id, &name).await? {
                Some(branch) => Ok((branch, Ensured::Existed)),
                None => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Deletes a branch and waits for its operations; `false` if it did not exist.
    pub async fn delete_branch_if_exists(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<bool> {
        match self.delete_branch(project_id, branch_id).await {
            Ok(operations) => {
                self.wait_for_operations(project_id, &operations).await?;
                Ok(true)
            }
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Creates a database unless it exists, then waits for its operations.
    pub async fn ensure_database(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
        owner_name: &str,
    ) -> Result<Ensured> {
        match self.create_database(project_id, branch_id, name, owner_name).await {
            Ok(created) => {
                self.wait_for_operations(project_id, &created.operations).await?;
                Ok(Ensured::Created)
            }
            Err(error) if error.is_conflict() => Ok(Ensured::Existed),
            Err(error) => Err(error),
        }
    }

    /// Drops a database and waits; `false` if it did not exist.
    pub async fn delete_database_if_exists(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<bool> {
        match self.delete_database(project_id, branch_id, name).await {
            Ok(operations) => {
                self.wait_for_operations(project_id, &operations).await?;
                Ok(true)
            }
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Creates a role unless it exists, then waits. Returns the password of a new role;
    /// `None` when the role existed (reveal or reset it to get one).
    pub async fn ensure_role(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<(Option<Secret>, Ensured)> {
        match self.create_role(project_id, branch_id, name).await {
            Ok(created) => {
                self.wait_for_operations(project_id, &created.operations).await?;
                Ok((created.role.password, Ensured::Created))
            }
            Err(error) if error.is_conflict() => Ok((None, Ensured::Existed)),
            Err(error) => Err(error),
        }
    }

    /// Deletes a role and waits; `false` if it did not exist.
    pub async fn delete_role_if_exists(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<bool> {
        match self.delete_role(project_id, branch_id, name).await {
            Ok(operations) => {
                self.wait_for_operations(project_id, &operations).await?;
                Ok(true)
            }
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Deletes a project; `false` if it did not exist.
    pub async fn delete_project_if_exists(&self, project_id: &ProjectId) -> Result<bool> {
        match self.delete_project(project_id).await {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }
}
