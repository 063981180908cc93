using System.Collections;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>defaults &lt; config file &lt; environment &lt; flags, lists replaced whole, mistakes named in one line.</summary>
public class ConfigurationTests
{
    private TempDirectory dir = null!;

    [SetUp] public void SetUp() => dir = new TempDirectory();
    [TearDown] public void TearDown() => dir.Dispose();

    private string File(string json)
    {
        var path = dir.Combine("oniondrop.json");
        System.IO.File.WriteAllText(path, json);
        return path;
    }

    private static OnionDropOptions Load(string? file, OnionDropConfiguration.Flags? flags = null, IDictionary? env = null) =>
        OnionDropConfiguration.Load(file, flags ?? new(), env ?? new Hashtable()).Options();

    [Test]
    public void DefaultsApplyWhenNothingIsSet()
    {
        // An empty file of our own: with none, /etc/oniondrop/oniondrop.json would be read if this machine has one.
        var o = Load(File("{ }"));
        Assert.That(o.Tor, Is.EqualTo(TorMode.Launch));
        Assert.That(o.Recipients, Is.Empty);
        Assert.That(o.DataDir, Is.EqualTo("/var/lib/oniondrop"));
    }

    [Test]
    public void FileThenEnvironmentThenFlagsEachWin()
    {
        var file = File("""
            // comments are allowed
            { "OnionDrop": { "DataDir": "/from/file", "Listen": "127.0.0.1:1", "Tor": "system", "NewsroomName": "File news", } }
            """);
        var env = new Hashtable { ["ONIONDROP_LISTEN"] = "127.0.0.1:2", ["ONIONDROP_TOR"] = "none" };
        var o = Load(file, new(Tor: "launch"), env);
        Assert.Multiple(() =>
        {
            Assert.That(o.NewsroomName, Is.EqualTo("File news"), "file over default");
            Assert.That(o.DataDir, Is.EqualTo("/from/file"), "file, nothing above");
            Assert.That(o.Listen, Is.EqualTo("127.0.0.1:2"), "environment over file");
            Assert.That(o.Tor, Is.EqualTo(TorMode.Launch), "flag over environment");
        });
        Assert.That(Load(file, new(DataDir: "rel/data"), env).DataDir, Is.EqualTo(Path.GetFullPath("rel/data")), "flag paths are made absolute");
    }

    [Test]
    public void AHigherLayerReplacesTheWholeRecipientList()
    {
        var file = File("""{ "OnionDrop": { "Recipients": [ "a", "b", "c" ] } }""");
        Assert.That(Load(file).Recipients, Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(Load(file, env: new Hashtable { ["ONIONDROP_RECIPIENTS__0"] = "x" }).Recipients, Is.EqualTo(new[] { "x" }),
            ".NET alone would merge by index and keep b and c");
        Assert.That(Load(file, new(Recipients: ["y"]), new Hashtable { ["ONIONDROP_RECIPIENTS"] = "x" }).Recipients, Is.EqualTo(new[] { "y" }));
    }

    [TestCase("ONIONDROP_DATA_DIR")]
    [TestCase("ONIONDROP_DataDir")]
    [TestCase("ONIONDROP_datadir")]
    public void EnvironmentNamesAnyCaseWithOrWithoutUnderscores(string name) =>
        Assert.That(Load(null, env: new Hashtable { [name] = "/env/dir" }).DataDir, Is.EqualTo("/env/dir"));

    [Test]
    public void EnvironmentListsInOneVariableOrIndexed()
    {
        Assert.That(Load(null, env: new Hashtable { ["ONIONDROP_RECIPIENTS"] = "k1, k2\nk3 k4" }).Recipients, Is.EqualTo(new[] { "k1", "k2", "k3", "k4" }));
        Assert.That(Load(null, env: new Hashtable { ["ONIONDROP_TOR_EXTRA_CONFIG"] = "ExitPolicy accept 127.0.0.1:*,reject *:*\nLog info stdout" }).TorExtraConfig,
            Is.EqualTo(new[] { "ExitPolicy accept 127.0.0.1:*,reject *:*", "Log info stdout" }), "tor lines split on newlines only");
        Assert.That(Load(null, env: new Hashtable { ["ONIONDROP_RECIPIENTS__0"] = "k1", ["ONIONDROP_RECIPIENTS__1"] = "k2" }).Recipients, Is.EqualTo(new[] { "k1", "k2" }));
        Assert.That(Load(null, env: new Hashtable { ["ONIONDROP_RETENTION__MAX_UNFETCHED_DAYS"] = "30" }).Retention.MaxUnfetchedDays, Is.EqualTo(30), "nested settings");
    }

    [Test]
    public void TheConfigFileComesFromTheEnvironmentWhenNoFlagNamesIt()
    {
        var file = File("""{ "OnionDrop": { "NewsroomName": "Env-chosen file" } }""");
        Assert.That(Load(null, env: new Hashtable { ["ONIONDROP_CONFIG"] = file }).NewsroomName, Is.EqualTo("Env-chosen file"));
    }

    [Test]
    public void OtherCommandsVariablesAreNotMistakenForSettings() =>
        Assert.That(Load(null, env: new Hashtable { ["ONIONDROP_PASSPHRASE"] = "x", ["ONIONDROP_CONFIG"] = "" }).Recipients, Is.Empty);

    [Test]
    public void TheShippedExampleConfigParsesAndOnlyLacksRealKeys()
    {
        var example = Path.Combine(RepoPaths.Root, "config", "oniondrop.json");
        var o = Load(example);
        Assert.That(o.Recipients, Is.EqualTo(new[] { "REPLACE_WITH_A_JOURNALIST_PUBLIC_KEY" }));
        var verdict = new OnionDropOptionsValidator().Validate(null, o);
        Assert.That(verdict.Failures, Has.Exactly(1).Contains("Recipients[0]"), "the placeholder is the only thing wrong with it");
    }

    [Test]
    public void MistakesAreNamedInOneLine()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Error(File("""{ "OnionDrop": { "Recipents": [ "x" ] } }""")), Does.Contain("unknown setting OnionDrop:Recipents"));
            Assert.That(Error(File("""{ "OnionDrop": { "Tor": "lunch" } }""")), Does.Contain("bad value 'lunch' for OnionDrop:Tor"));
            Assert.That(Error(File("""{ "OnionDrop": { "DataDir": "/x" """)), Does.Contain("not valid JSON"));
            Assert.That(Error(dir.Combine("missing.json")), Does.Contain("not found"));
            Assert.That(Error(null, new Hashtable { ["ONIONDROP_RECIPIENT"] = "x" }), Does.Contain("ONIONDROP_RECIPIENT is not a setting"));
        });
    }

    [Test]
    public void A_misspelt_or_misplaced_retention_setting_is_refused_not_left_at_its_default()
    {
        // The default deletes a submission at its first acknowledgement: a typo must not quietly mean that.
        Assert.Multiple(() =>
        {
            Assert.That(Error(File("""{ "OnionDrop": { "Retention": { "DeleteAftr": "All", "KeepDaysAfterAcknowledgment": 7 } } }""")),
                Is.EqualTo("unknown setting(s) 'DeleteAftr', 'KeepDaysAfterAcknowledgment' in OnionDrop:Retention"));
            Assert.That(Error(null, new Hashtable { ["ONIONDROP_RETENTION__DELETE_AFTR"] = "All" }), Does.Contain("in OnionDrop:Retention"));
            Assert.That(Error(File("""{ "OnionDrop": { }, "Retention": { "DeleteAfter": "All" } }""")), Does.Contain("unknown section \"Retention\""));
        });
        // Spelt right, they are taken.
        var o = Load(File("""{ "OnionDrop": { "Retention": { "DeleteAfter": "All", "Journalists": [ "alice" ], "KeepDaysAfterAcknowledgement": 7 } }, "Logging": { "LogLevel": { "Default": "Warning" } } }"""));
        Assert.That((o.Retention.DeleteAfter, o.Retention.KeepDaysAfterAcknowledgement), Is.EqualTo((OnionDrop.Storage.AcknowledgementQuorum.All, 7)));
    }

    [Test]
    public void A_log_level_that_is_no_level_is_refused_naming_the_entry()
    {
        // Found only when the host set up its logging: exit 1, "Configuration value 'Verbose' is not supported."
        Assert.That(Error(File("""{ "Logging": { "LogLevel": { "Default": "Verbose" } } }""")),
            Does.Contain("Logging:LogLevel:Default").And.Contain("'Verbose'").And.Contain("Information"));
        Assert.That(Error(File("""{ "Logging": { "Console": { "LogLevel": { "OnionDrop.Tor": "loud" } } } }""")),
            Does.Contain("Logging:Console:LogLevel:OnionDrop.Tor"));
        Assert.DoesNotThrow(() => Load(File("""{ "Logging": { "LogLevel": { "Default": "warning", "Microsoft": "None" } } }""")), "any case, as the host reads it");
    }

    [Test]
    public void A_relative_DataDir_is_made_absolute_from_the_config_file_s_folder_or_else_the_working_directory()
    {
        // Left relative, it meant another directory for each working directory: "/" under systemd, the
        // operator's home for `oniondrop status`.
        Assert.That(Load(File("""{ "OnionDrop": { "DataDir": "data" } }""")).DataDir, Is.EqualTo(dir.Combine("data")), "beside the file");
        Assert.That(Load(File("""{ "OnionDrop": { "DataDir": "../elsewhere/data" } }""")).DataDir,
            Is.EqualTo(Path.GetFullPath(Path.Combine(dir.Path, "../elsewhere/data"))));
        Assert.That(Load(File("{ }"), env: new Hashtable { ["ONIONDROP_DATA_DIR"] = "rel/data" }).DataDir, Is.EqualTo(Path.GetFullPath("rel/data")),
            "from the environment, as from --data-dir");
    }

    [Test]
    public void Every_relative_path_setting_is_read_as_the_DataDir_is_and_a_bare_tor_stays_a_command()
    {
        var fromFile = Load(File("""
            { "OnionDrop": { "TorrcTemplate": "torrc.template", "WebSocketDirectory": "run", "SystemTorControlSocket": "tor/control",
                             "TorPath": "bin/tor" } }
            """));
        Assert.That(new[] { fromFile.TorrcTemplate, fromFile.WebSocketDirectory, fromFile.SystemTorControlSocket, fromFile.TorPath },
            Is.EqualTo(new[] { dir.Combine("torrc.template"), dir.Combine("run"), dir.Combine("tor/control"), dir.Combine("bin/tor") }), "beside the file");
        var fromEnv = Load(File("{ }"), env: new Hashtable { ["ONIONDROP_TORRC_TEMPLATE"] = "t/torrc", ["ONIONDROP_TOR_PATH"] = "tor" });
        Assert.That(fromEnv.TorrcTemplate, Is.EqualTo(Path.GetFullPath("t/torrc")), "from the environment, as from the working directory");
        Assert.That(fromEnv.TorPath, Is.EqualTo("tor"), "looked up in PATH");
        Assert.That(Load(File("""{ "OnionDrop": { "TorrcTemplate": "/etc/oniondrop/torrc" } }""")).TorrcTemplate, Is.EqualTo("/etc/oniondrop/torrc"));
    }

    [Test]
    public void A_list_inside_a_section_takes_one_item_per_line_and_a_plain_setting_has_nothing_inside_it()
    {
        // README: "Lists: one variable, one item per line". Inside Retention this failed with the binder's own message;
        // and a nested name on a plain setting was ignored without a word.
        var file = File("""{ "OnionDrop": { "Retention": { "Journalists": [ "carol", "dave", "erin" ] } } }""");
        Assert.That(Load(file, env: new Hashtable { ["ONIONDROP_RETENTION__JOURNALISTS"] = "alice\nbob\n" }).Retention.Journalists,
            Is.EqualTo(new[] { "alice", "bob" }), "one item per line, replacing the file's whole list");
        Assert.That(Load(file, env: new Hashtable { ["ONIONDROP_RETENTION__JOURNALISTS__0"] = "alice" }).Retention.Journalists,
            Is.EqualTo(new[] { "alice" }), "indexed too, replacing the whole list (not merged by index)");
        Assert.That(Error(File("{ }"), new Hashtable { ["ONIONDROP_DATA_DIR__X"] = "1" }),
            Is.EqualTo("environment: ONIONDROP_DATA_DIR__X: DataDir has no settings inside it (set ONIONDROP_DATA_DIR itself)"));
    }

    private static string Error(string? file, IDictionary? env = null)
    {
        var e = Assert.Throws<ConfigurationError>(() => Load(file, env: env))!;
        Assert.That(e.Message, Does.Not.Contain('\n'));
        return e.Message;
    }
}
