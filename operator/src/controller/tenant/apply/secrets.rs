//! The tenant's keys and certificates, each made once and kept: the join-token signing
//! key, the control CA and node certificate, the wrapped data key (rotated on request or
//! schedule, escrowed in the operator's namespace) and the local key-encryption key.

use zeroize::Zeroizing;

use super::*;

impl Run<'_> {
    /// The Secret `name` read through `secrets`, or, when there is none, the one `make`
    /// builds (its error turned into ours by `failed`), created once: never replaced, as
    /// it holds keys that must not change.
    async fn secret_once<E>(
        &mut self,
        secrets: &Api<Secret>,
        name: &str,
        what: &str,
        make: impl FnOnce() -> Result<Secret, E>,
        failed: impl FnOnce(E) -> Error,
    ) -> Result<Secret, Error> {
        if let Some(existing) = secrets.get_opt(name).await.map_err(self.read_error(what))? {
            return Ok(existing);
        }
        let created = ssa::create_once(secrets, &make().map_err(failed)?)
            .await
            .map_err(|source| Error::Apply {
                tenant: self.v.name.clone(),
                kind: "Secret".to_string(),
                name: name.to_string(),
                source,
            })?;
        if created.changed {
            self.changes.push(format!("created Secret/{name}"));
        }
        Ok(created.object)
    }

    /// Returns the join-token public keys media nodes must accept, creating the key pair on
    /// first use. The key is replaced only when the tenant's `sanctum.dev/rotate-join-token-key`
    /// annotation asks; the previous key is published beside it until the tokens and
    /// sessions it admitted are over, then dropped.
    pub(super) async fn ensure_signing_key(
        &mut self,
        tenant: &VideoTenant,
    ) -> Result<String, Error> {
        let tenant_name = self.v.name.clone();
        let key_error = |source| Error::SigningKey {
            tenant: tenant_name.clone(),
            source,
        };
        let secrets = self.api::<Secret>();
        let v = self.v;
        let mut secret = self
            .secret_once(
                &secrets,
                signing_key::SECRET_NAME,
                "signing key",
                || signing_key::generate_secret(v),
                key_error,
            )
            .await?;
        let now = Timestamp::now();
        let requested = tenant.annotations().get(signing_key::ROTATE_REQUEST);
        if let Some(requested) = requested.filter(|_| signing_key::rotation_due(&secret, requested))
        {
            let overlap = self.ctx.config.join_key_overlap.unwrap_or_else(|| {
                let session = u64::try_from(self.v.spec.media.max_session_minutes).unwrap_or(0);
                std::time::Duration::from_secs(session * 60 + 11 * 60)
            });
            let retires = now
                .checked_add(jiff::SignedDuration::try_from(overlap).unwrap_or_default())
                .unwrap_or(now);
            let patch = signing_key::rotation_patch(&secret, requested, &retires.to_string())
                .map_err(key_error)?;
            secret = self
                .merge_patch_secret(&secrets, signing_key::SECRET_NAME, &patch)
                .await?;
            info!(%retires, "rotated the join-token signing key");
            self.changes.push(format!(
                "rotated the join-token signing key; the previous key is accepted until {retires}"
            ));
        }
        let (published, retired) = signing_key::published_keys(&secret, now).map_err(key_error)?;
        if retired {
            self.merge_patch_secret(
                &secrets,
                signing_key::SECRET_NAME,
                &signing_key::retire_patch(&secret),
            )
            .await?;
            self.changes
                .push("retired the previous join-token signing key".to_string());
        }
        Ok(published)
    }

    /// Applies a JSON merge patch to Secret `name`; one naming a stale resourceVersion
    /// fails as a stale read (retried at once with fresh objects).
    async fn merge_patch_secret<P: serde::Serialize + std::fmt::Debug>(
        &self,
        secrets: &Api<Secret>,
        name: &str,
        patch: &P,
    ) -> Result<Secret, Error> {
        match secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(patched) => Ok(patched),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::StaleRead {
                tenant: self.v.name.clone(),
            }),
            Err(source) => Err(Error::Apply {
                tenant: self.v.name.clone(),
                kind: "Secret".into(),
                name: name.into(),
                source,
            }),
        }
    }

    /// The tenant's control CA (made once, in the operator's namespace) and the media
    /// nodes' control certificate issued from it into the tenant namespace, re-issued when
    /// it nears expiry or comes from another CA.
    pub(super) async fn ensure_control_tls(&mut self) -> Result<(), Error> {
        let namespace = self.ctx.config.operator_namespace.clone();
        let operator_secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        let name = control_tls::ca_secret_name(self.v);
        let tenant = self.v.name.clone();
        let tls_error = |source: control_tls::TlsError| Error::ControlTls {
            tenant: tenant.clone(),
            source,
        };
        let now = Timestamp::now();
        let v = self.v;
        let ca = self
            .secret_once(
                &operator_secrets,
                &name,
                "control CA",
                || control_tls::generate_ca_secret(v, &namespace, now),
                tls_error,
            )
            .await?;
        let secrets = self.api::<Secret>();
        let node = secrets
            .get_opt(sanctum_api::control::NODE_TLS_SECRET)
            .await
            .map_err(self.read_error("media control certificate"))?;
        if !node.is_some_and(|n| control_tls::node_secret_current(&n, &ca, now)) {
            let issued = control_tls::issue_node_secret(self.v, &ca, now).map_err(tls_error)?;
            self.apply(&secrets, issued).await?;
        }
        Ok(())
    }

    /// Returns the tenant's control public key, creating the key pair (in the operator's
    /// namespace) on first use; never replaced while the tenant lives.
    pub(super) async fn ensure_control_key(&mut self) -> Result<String, Error> {
        let key_error = |source| Error::SigningKey {
            tenant: self.v.name.clone(),
            source,
        };
        let namespace = self.ctx.config.operator_namespace.clone();
        let secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        let name = signing_key::control_key_name(self.v);
        let v = self.v;
        let secret = self
            .secret_once(
                &secrets,
                &name,
                "control key",
                || signing_key::generate_control_secret(v, &namespace),
                key_error,
            )
            .await?;
        signing_key::public_key_pem(&secret).map_err(key_error)
    }

    /// Finds or makes the tenant's key-encryption key and its wrapped data key. The
    /// data-key Secret is created once; a new version is added when `rotationDays` have
    /// passed or the tenant's `sanctum.dev/rotate-data-key` annotation asks for one, and
    /// old versions stay for decrypting older recordings.
    pub(super) async fn ensure_tenant_key(
        &mut self,
        tenant: &VideoTenant,
    ) -> Result<(TenantKeyRef, Secret), Error> {
        let name = self.v.name.clone();
        let spec = &self.v.spec.encryption;
        let cloud = &self.ctx.cloud;
        let key_err = |source| Error::Key {
            tenant: name.clone(),
            source,
        };
        let (arn, master) = match spec.provider {
            KeyProvider::Aws => {
                let key = keys::ensure_kms_key(
                    cloud,
                    &name,
                    &self.v.owner.uid,
                    spec.key_arn.as_deref(),
                    spec.rotation_days,
                )
                .await
                .map_err(key_err)?;
                (key.arn, None)
            }
            KeyProvider::Local => ("local".to_string(), Some(self.local_kek().await?)),
        };
        let mut key = TenantKeyRef {
            provider: spec.provider,
            arn,
            version: 1,
            secret: tenant_key::SECRET_NAME.into(),
        };
        let now = Timestamp::now();
        let secrets = self.api::<Secret>();
        let existing = secrets
            .get_opt(tenant_key::SECRET_NAME)
            .await
            .map_err(self.read_error("tenant key"))?;
        let Some(mut secret) = existing else {
            let wrapped = self
                .wrap_new_data_key(&key, master.as_ref().map(|m| m.as_slice()))
                .await?;
            let fresh =
                tenant_key::build_tenant_key_secret(self.v, &key, wrapped, &now.to_string());
            let created =
                ssa::create_once(&secrets, &fresh)
                    .await
                    .map_err(|source| Error::Apply {
                        tenant: name.clone(),
                        kind: "Secret".to_string(),
                        name: tenant_key::SECRET_NAME.to_string(),
                        source,
                    })?;
            if created.changed {
                self.changes
                    .push(format!("created Secret/{}", tenant_key::SECRET_NAME));
            }
            key.version = tenant_key::current_version(&created.object).unwrap_or(1);
            return Ok((key, created.object));
        };
        key.version = tenant_key::current_version(&secret).ok_or_else(|| Error::LocalKey {
            tenant: name.clone(),
            source: LocalKeyError::Unwrap,
        })?;
        let requested = tenant.annotations().get(tenant_key::ROTATE_REQUEST);
        if tenant_key::rotation_due(&secret, key.version, requested, spec.rotation_days, now) {
            let next = TenantKeyRef {
                version: key.version + 1,
                ..key.clone()
            };
            let wrapped = self
                .wrap_new_data_key(&next, master.as_ref().map(|m| m.as_slice()))
                .await?;
            let patch =
                tenant_key::rotation_patch(&secret, &next, wrapped, requested, &now.to_string());
            secret = self
                .merge_patch_secret(&secrets, tenant_key::SECRET_NAME, &patch)
                .await?;
            info!(version = next.version, "rotated the tenant data key");
            self.changes
                .push(format!("{}{}", tenant_key::ROTATED, next.version));
            key = next;
        }
        Ok((key, secret))
    }

    async fn wrap_new_data_key(
        &self,
        key: &TenantKeyRef,
        master: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let name = &self.v.name;
        match master {
            Some(master) => {
                keys::new_local_data_key(master, name).map_err(|source| Error::LocalKey {
                    tenant: name.clone(),
                    source,
                })
            }
            None => keys::new_kms_data_key(
                &self.ctx.cloud,
                &keys::TenantKey {
                    arn: key.arn.clone(),
                },
                keys::KeyContext {
                    tenant: name,
                    uid: &self.v.owner.uid,
                },
            )
            .await
            .map_err(|source| Error::Key {
                tenant: name.clone(),
                source,
            }),
        }
    }

    /// Keeps a copy of every wrapped data-key version in the operator's namespace, so
    /// recordings stay readable after the tenant namespace is gone (deletion policy
    /// `Retain`). Only ciphertext is copied: it is useless without the KMS or master key.
    pub(super) async fn escrow_data_key(&mut self, secret: &Secret) -> Result<(), Error> {
        let namespace = self.ctx.config.operator_namespace.clone();
        let escrow = tenant_key::build_escrow_secret(self.v, &namespace, secret);
        let api = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        self.apply(&api, escrow).await?;
        Ok(())
    }

    /// The `local` provider's key-encryption key of this tenant: made once in the
    /// operator's namespace, and copied into the tenant namespace for its media nodes (a
    /// copy changed by hand is repaired).
    async fn local_kek(&mut self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let namespace = self.ctx.config.operator_namespace.clone();
        let operator_secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        let name = tenant_key::local_kek_name(self.v);
        let tenant = self.v.name.clone();
        let v = self.v;
        let authority = self
            .secret_once(
                &operator_secrets,
                &name,
                "local key-encryption key",
                || {
                    keys::random_key()
                        .map(|key| tenant_key::build_local_kek_secret(v, &namespace, &key))
                },
                |source| Error::LocalKey {
                    tenant: tenant.clone(),
                    source,
                },
            )
            .await?;
        let key = tenant_key::local_key_bytes(&authority)
            .map(|b| Zeroizing::new(b.to_vec()))
            .ok_or_else(|| Error::LocalKey {
                tenant: tenant.clone(),
                source: LocalKeyError::BadMasterKey,
            })?;
        // Server-side applied like every owned object, so a copy changed by hand is repaired.
        let copy = tenant_key::build_local_key_copy(self.v, &key);
        let secrets = self.api::<Secret>();
        self.apply(&secrets, copy).await?;
        Ok(key)
    }
}
