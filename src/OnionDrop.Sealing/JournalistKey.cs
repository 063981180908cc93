namespace OnionDrop.Sealing;

/// <summary>A journalist's key pair. Lives only on the journalist's machine, never on the server.</summary>
public sealed class JournalistKey : IDisposable
{
    public static JournalistKey Generate() => throw new NotImplementedException();

    public RecipientPublicKey PublicKey => throw new NotImplementedException();

    /// <summary>Writes the secret key file (mode 0600, created exclusively), optionally passphrase-protected (Argon2id).</summary>
    public void Save(string path, string? passphrase = null) => throw new NotImplementedException();

    /// <summary>Loads a key file; asks <paramref name="passphrase"/> only if the file is protected.</summary>
    public static JournalistKey Load(string path, Func<string>? passphrase = null) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}
