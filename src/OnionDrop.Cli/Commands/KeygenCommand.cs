using System.CommandLine;
using OnionDrop.Sealing;

namespace OnionDrop.Cli.Commands;

/// <summary>`oniondrop keygen -o FILE`: a journalist key pair; the public key is stdout's last line.</summary>
public static class KeygenCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "Secret key file to create (mode 0600; never overwritten)", Required = true, HelpName = "FILE" };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "Protect the key with the passphrase in this file (Argon2id); ONIONDROP_PASSPHRASE works too", HelpName = "FILE" };
        var ask = new Option<bool>("--ask-passphrase") { Description = "Protect the key with a passphrase typed at the terminal" };
        var command = new Command("keygen", "Create a journalist key pair: the secret key stays offline, the public key goes to the server's --recipient.")
        {
            output, passphraseFile, ask,
        };
        command.SetAction(parseResult =>
        {
            var path = parseResult.GetValue(output)!;
            try
            {
                // Checked before any passphrase is asked (twice) for a key that will not be written.
                if (Path.Exists(path)) return Fail($"{path} already exists; refusing to overwrite a key");
                var passphrase = Passphrases.FromFileOrEnvironment(parseResult.GetValue(passphraseFile));
                if (passphrase is null && parseResult.GetValue(ask)) passphrase = Passphrases.AskNew();
                using var key = JournalistKey.Generate();
                key.Save(path, passphrase);
                Console.Error.WriteLine($"oniondrop keygen: secret key written to {path}{(passphrase is null ? " (no passphrase)" : " (passphrase-protected)")}; keep it offline.");
                Console.Error.WriteLine("oniondrop keygen: public key (give it to the server as --recipient):");
                Console.Out.WriteLine(key.PublicKey.ToString());
                return 0;
            }
            catch (IOException e) when (Path.Exists(path)) { return Fail($"{path} already exists; refusing to overwrite a key ({e.Message})"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PassphraseException) { return Fail(e.Message); }
        });
        return command;
    }

    private static int Fail(string reason)
    {
        Console.Error.WriteLine("oniondrop keygen: " + reason);
        return 1;
    }
}
