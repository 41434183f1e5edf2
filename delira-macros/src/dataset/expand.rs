//! Phase 3: code generation only. Every rule was checked by [`super::validate`]; type rules are
//! written here as trait bounds at the user's field type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::Role;
use super::validate::{Field, Model};

pub fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let infos = model.fields.iter().map(field_info);
    let checks = model.fields.iter().map(type_checks);
    let loads = model.fields.iter().enumerate().map(|(index, f)| {
        let (name, ty) = (&f.ident, &f.ty);
        quote_spanned! {ty.span()=>
            #name: ::delira::__private::load_field(
                __entry,
                #index,
                __fields,
                <#ty as ::delira::__private::SampleField>::load,
            )?
        }
    });
    let values = model.fields.iter().enumerate().map(|(index, f)| {
        let (name, ty) = (&f.ident, &f.ty);
        let key = name.to_string();
        quote_spanned! {ty.span()=>
            (
                ::delira::__private::String::from(#key),
                <#ty as ::delira::__private::SampleField>::into_value(self.#name, &__fields[#index]),
            )
        }
    });
    let spatial = model.fields.iter().map(|f| {
        let (name, ty) = (&f.ident, &f.ty);
        quote_spanned! {ty.span()=>
            __out.extend(<#ty as ::delira::__private::SampleField>::spatial(&mut self.#name));
        }
    });
    let sizes = model.fields.iter().map(|f| {
        let (name, ty) = (&f.ident, &f.ty);
        quote_spanned! {ty.span()=>
            <#ty as ::delira::__private::ByteSize>::byte_size(&self.#name)
        }
    });

    let trait_impls = quote! {
        #[automatically_derived]
        impl ::delira::__private::DeclaredSample for #ident {
            const FIELDS: &'static [::delira::__private::FieldInfo] = &[#(#infos),*];

            fn from_entry(
                __entry: &::delira::__private::SubjectEntry,
            ) -> ::core::result::Result<Self, ::delira::__private::DataError> {
                #(#checks)*
                let __fields = <Self as ::delira::__private::DeclaredSample>::FIELDS;
                ::core::result::Result::Ok(Self { #(#loads,)* })
            }
        }

        #[automatically_derived]
        impl ::delira::__private::ByteSize for #ident {
            fn byte_size(&self) -> usize {
                0 #(+ #sizes)*
            }
        }

        #[automatically_derived]
        impl ::delira::__private::Sample for #ident {
            fn into_fields(
                self,
            ) -> ::delira::__private::Vec<(
                ::delira::__private::String,
                ::delira::__private::Value,
            )> {
                let __fields = <Self as ::delira::__private::DeclaredSample>::FIELDS;
                ::delira::__private::vec![#(#values),*]
            }
        }

        #[automatically_derived]
        impl ::delira::__private::Augmentable for #ident {
            fn spatial_fields(
                &mut self,
            ) -> ::delira::__private::Vec<::delira::__private::SpatialField<'_>> {
                let mut __out = ::delira::__private::Vec::new();
                #(#spatial)*
                __out
            }
        }
    };
    let loaders = loaders(model);
    quote! {
        #trait_impls
        #loaders
    }
}

/// The generated `load_dir` and `load_csv`.
fn loaders(model: &Model) -> TokenStream {
    let (ident, vis) = (&model.ident, &model.vis);
    quote! {
        #[automatically_derived]
        impl #ident {
            /// Discovers a folder-per-subject layout in `root` (one folder per subject, sorted by
            /// name; image files named by the fields' `nifti` templates; other values from
            /// `root/subjects.csv`). Reads no image: the dataset loads each subject when asked.
            #vis fn load_dir(
                root: impl ::core::convert::AsRef<::delira::__private::Path>,
            ) -> ::core::result::Result<
                ::delira::__private::SubjectDataset<Self>,
                ::delira::__private::SubjectError,
            > {
                ::delira::__private::SubjectDataset::from_dir(root)
            }

            /// Reads a CSV manifest at `path` (one row per subject, a column per field: image
            /// paths relative to the manifest's folder, or values). Reads no image: the dataset
            /// loads each subject when asked.
            #vis fn load_csv(
                path: impl ::core::convert::AsRef<::delira::__private::Path>,
            ) -> ::core::result::Result<
                ::delira::__private::SubjectDataset<Self>,
                ::delira::__private::SubjectError,
            > {
                ::delira::__private::SubjectDataset::from_csv(path)
            }
        }
    }
}

fn field_info(field: &Field) -> TokenStream {
    let name = field.ident.to_string();
    let ty = &field.ty;
    let role = match field.role {
        Role::Input => quote!(Input),
        Role::Target => quote!(Target),
        Role::Meta => quote!(Meta),
        Role::Weight => quote!(Weight),
        Role::Group => quote!(Group),
        Role::Class => quote!(Class),
    };
    let kind = quote_spanned! {ty.span()=>
        <#ty as ::delira::__private::SampleField>::KIND
    };
    let nifti = if let Some(lit) = &field.nifti {
        quote!(::core::option::Option::Some(#lit))
    } else {
        quote!(::core::option::Option::None)
    };
    let column = &field.column;
    let (subject, class) = (field.subject, field.class);
    let normalize = match field.normalize {
        Some("zscore") => quote!(ZScore),
        Some("zscore_nonzero") => quote!(ZScoreNonZero),
        Some("minmax") => quote!(MinMax),
        _ => quote!(None),
    };
    let dtype = match field.dtype {
        Some("f32") => quote!(F32),
        Some("i64") => quote!(I64),
        _ => quote!(Auto),
    };
    let channel_axis = if field.channel_axis == Some("last") {
        quote!(Last)
    } else {
        quote!(First)
    };
    quote! {
        ::delira::__private::FieldInfo {
            name: #name,
            role: ::delira::__private::Role::#role,
            kind: #kind,
            nifti: #nifti,
            column: #column,
            subject_id: #subject,
            class: #class,
            normalize: ::delira::__private::Normalize::#normalize,
            dtype: ::delira::__private::Dtype::#dtype,
            channel_axis: ::delira::__private::ChannelAxis::#channel_axis,
        }
    }
}

/// Trait bounds that tie a field's options and role to its type, spanned at the type.
fn type_checks(field: &Field) -> TokenStream {
    let ty = &field.ty;
    let mut checks = Vec::new();
    if field.nifti.is_some() {
        checks.push(quote!(assert_image));
    }
    if field.normalize.is_some() {
        checks.push(quote!(assert_normalize));
    }
    if field.dtype.is_some() {
        checks.push(quote!(assert_cast));
    }
    if field.channel_axis.is_some() {
        checks.push(quote!(assert_channels));
    }
    match field.role {
        Role::Weight => checks.push(quote!(assert_weight)),
        Role::Group => checks.push(quote!(assert_group)),
        _ => {}
    }
    if field.class {
        checks.push(quote!(assert_class));
    }
    if field.subject {
        checks.push(quote!(assert_subject_id));
    }
    checks
        .into_iter()
        .map(|check| {
            quote_spanned! {ty.span()=>
                ::delira::__private::#check::<#ty>();
            }
        })
        .collect()
}

/// What is emitted next to the errors when validation fails: the same items with no behaviour,
/// so that code using the struct does not add errors of its own.
pub fn stub(input: &syn::DeriveInput) -> TokenStream {
    let syn::Data::Struct(_) = &input.data else {
        return TokenStream::new();
    };
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let unreachable = quote!(::core::unreachable!(
        "`#[derive(Dataset)]` reported an error"
    ));
    let loaders = loaders(&Model {
        ident: ident.clone(),
        vis: input.vis.clone(),
        fields: Vec::new(),
    });
    quote! {
        #[automatically_derived]
        impl ::delira::__private::DeclaredSample for #ident {
            const FIELDS: &'static [::delira::__private::FieldInfo] = &[];

            fn from_entry(
                _: &::delira::__private::SubjectEntry,
            ) -> ::core::result::Result<Self, ::delira::__private::DataError> {
                #unreachable
            }
        }

        #[automatically_derived]
        impl ::delira::__private::ByteSize for #ident {
            fn byte_size(&self) -> usize {
                #unreachable
            }
        }

        #[automatically_derived]
        impl ::delira::__private::Sample for #ident {
            fn into_fields(
                self,
            ) -> ::delira::__private::Vec<(
                ::delira::__private::String,
                ::delira::__private::Value,
            )> {
                #unreachable
            }
        }

        #[automatically_derived]
        impl ::delira::__private::Augmentable for #ident {
            fn spatial_fields(
                &mut self,
            ) -> ::delira::__private::Vec<::delira::__private::SpatialField<'_>> {
                #unreachable
            }
        }

        #loaders
    }
}
